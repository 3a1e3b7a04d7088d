import unittest

from app.auth import SessionStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SessionStoreTest(unittest.TestCase):
    def test_login_token_resolves_to_the_user(self) -> None:
        store = SessionStore()
        token = store.login(7)
        self.assertEqual(store.user_for(token), 7)

    def test_unknown_token_is_rejected(self) -> None:
        self.assertIsNone(SessionStore().user_for("nope"))

    def test_session_expires(self) -> None:
        clock = FakeClock()
        store = SessionStore(ttl_seconds=60, clock=clock)
        token = store.login(7)
        clock.now += 61
        self.assertIsNone(store.user_for(token))

    def test_logout_ends_the_session(self) -> None:
        store = SessionStore()
        token = store.login(7)
        store.logout(token)
        self.assertIsNone(store.user_for(token))
