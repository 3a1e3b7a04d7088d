import unittest

from app.roles import Role, can


class RolesTest(unittest.TestCase):
    def test_users_only_read(self) -> None:
        self.assertTrue(can(Role.USER, "read"))
        self.assertFalse(can(Role.USER, "deactivate"))
        self.assertFalse(can(Role.USER, "report"))

    def test_admins_may_do_everything(self) -> None:
        for action in ("read", "deactivate", "report"):
            self.assertTrue(can(Role.ADMIN, action))
        self.assertFalse(can(Role.ADMIN, "delete the database"))
