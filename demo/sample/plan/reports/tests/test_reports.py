import unittest

from app.admin import AdminService
from app.audit import AuditLog
from app.directory import Directory
from app.profiles import ProfileStore
from app.reports import build_report
from app.roles import Role


class ReportsTest(unittest.TestCase):
    def test_the_report_counts_accounts_and_actions(self) -> None:
        store = ProfileStore()
        for user_id in (1, 2, 3):
            store.set(user_id, f"User {user_id}")
        admin = AdminService(AuditLog())
        admin.deactivate(9, Role.ADMIN, 2)
        report = build_report(Role.ADMIN, admin, Directory(store))
        self.assertEqual(report, {"profiles": 3, "active": 2, "deactivated": 1, "deactivations": 1})

    def test_users_cannot_see_reports(self) -> None:
        with self.assertRaises(PermissionError):
            build_report(Role.USER, AdminService(AuditLog()), Directory(ProfileStore()))
