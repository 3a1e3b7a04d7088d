"""Who may do what: the roles of the service and their permissions."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.USER: frozenset({"read"}),
    Role.ADMIN: frozenset({"read", "deactivate", "report"}),
}


def can(role: Role, action: str) -> bool:
    return action in PERMISSIONS[role]
