import unittest

from app.auth import InvalidToken, issue_token, secret_from_env, verify_token

SECRET = b"test-secret"


class TokenTest(unittest.TestCase):
    def test_round_trip(self) -> None:
        token = issue_token(7, SECRET, now=1000.0)
        self.assertEqual(verify_token(token, SECRET, now=1001.0), 7)

    def test_token_is_three_dot_separated_parts(self) -> None:
        self.assertEqual(len(issue_token(7, SECRET).split(".")), 3)

    def test_other_secret_is_rejected(self) -> None:
        token = issue_token(7, SECRET)
        with self.assertRaises(InvalidToken):
            verify_token(token, b"another-secret")

    def test_tampered_payload_is_rejected(self) -> None:
        header, _payload, signature = issue_token(7, SECRET).split(".")
        forged = issue_token(1, b"attacker").split(".")[1]
        with self.assertRaises(InvalidToken):
            verify_token(f"{header}.{forged}.{signature}", SECRET)

    def test_expired_token_is_rejected(self) -> None:
        token = issue_token(7, SECRET, ttl_seconds=60, now=1000.0)
        with self.assertRaises(InvalidToken):
            verify_token(token, SECRET, now=1060.0)

    def test_garbage_is_rejected(self) -> None:
        for garbage in ("", "a.b", "a.b.c", "not a token at all"):
            with self.subTest(garbage=garbage), self.assertRaises(InvalidToken):
                verify_token(garbage, SECRET)

    def test_secret_comes_from_the_environment(self) -> None:
        self.assertIsInstance(secret_from_env(), bytes)
