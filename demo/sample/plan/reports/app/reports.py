"""The admin report: how many accounts, how many deactivated, what admins did."""

from __future__ import annotations

from app.admin import AdminService
from app.directory import Directory
from app.roles import Role, can


def build_report(role: Role, admin: AdminService, directory: Directory) -> dict[str, int]:
    """The report's numbers; PermissionError unless ``role`` may see reports."""
    if not can(role, "report"):
        raise PermissionError(f"a {role} may not see reports")
    profiles = directory.profiles.all()
    active = [p for p in profiles if admin.is_active(p.user_id)]
    return {
        "profiles": len(profiles),
        "active": len(active),
        "deactivated": len(profiles) - len(active),
        "deactivations": admin.audit.count("deactivate"),
    }
