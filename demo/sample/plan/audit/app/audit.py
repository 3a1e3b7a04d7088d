"""The audit log: who did what to whom, refused when their role does not allow it."""

from __future__ import annotations

from dataclasses import dataclass

from app.roles import Role, can


@dataclass(frozen=True)
class AuditEvent:
    actor: int
    role: Role
    action: str
    target: int


class AuditLog:
    def __init__(self) -> None:
        self._events: list[AuditEvent] = []

    def record(self, actor: int, role: Role, action: str, target: int) -> AuditEvent:
        """Record an action; PermissionError (and nothing recorded) when ``role`` may not."""
        if not can(role, action):
            raise PermissionError(f"a {role} may not {action}")
        event = AuditEvent(actor, role, action, target)
        self._events.append(event)
        return event

    def events(self) -> list[AuditEvent]:
        return list(self._events)

    def count(self, action: str | None = None) -> int:
        return sum(1 for event in self._events if action is None or event.action == action)
