"""Admin actions on accounts, each one audited."""

from __future__ import annotations

from app.audit import AuditLog
from app.roles import Role


class AdminService:
    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._deactivated: set[int] = set()

    def deactivate(self, actor: int, role: Role, user_id: int) -> None:
        """Deactivate ``user_id``; PermissionError unless ``role`` may deactivate."""
        self.audit.record(actor, role, "deactivate", user_id)
        self._deactivated.add(user_id)

    def is_active(self, user_id: int) -> bool:
        return user_id not in self._deactivated

    def deactivated(self) -> list[int]:
        return sorted(self._deactivated)
