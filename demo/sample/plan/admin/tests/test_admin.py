import unittest

from app.admin import AdminService
from app.audit import AuditLog
from app.roles import Role


class AdminTest(unittest.TestCase):
    def test_an_admin_deactivates_and_it_is_audited(self) -> None:
        admin = AdminService(AuditLog())
        admin.deactivate(1, Role.ADMIN, 5)
        self.assertFalse(admin.is_active(5))
        self.assertTrue(admin.is_active(6))
        self.assertEqual(admin.deactivated(), [5])
        self.assertEqual(admin.audit.count("deactivate"), 1)

    def test_a_user_cannot_deactivate(self) -> None:
        admin = AdminService(AuditLog())
        with self.assertRaises(PermissionError):
            admin.deactivate(2, Role.USER, 5)
        self.assertTrue(admin.is_active(5))
