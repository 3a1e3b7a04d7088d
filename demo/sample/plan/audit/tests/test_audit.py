import unittest

from app.audit import AuditLog
from app.roles import Role


class AuditTest(unittest.TestCase):
    def test_allowed_actions_are_recorded(self) -> None:
        log = AuditLog()
        log.record(1, Role.ADMIN, "deactivate", 7)
        log.record(2, Role.USER, "read", 7)
        self.assertEqual([e.action for e in log.events()], ["deactivate", "read"])
        self.assertEqual((log.count(), log.count("deactivate")), (2, 1))

    def test_a_forbidden_action_is_refused_and_not_recorded(self) -> None:
        log = AuditLog()
        with self.assertRaises(PermissionError):
            log.record(2, Role.USER, "deactivate", 7)
        self.assertEqual(log.count(), 0)
