"""The /api/v2/users endpoint: auth, validation, the envelope and duplicate emails."""

import unittest

from app.api import Request, Response, create_app
from app.auth import issue_token, secret_from_env
from app.users import UserStore


class UsersV2Test(unittest.TestCase):
    def setUp(self) -> None:
        self.store = UserStore()
        self.app = create_app(self.store)
        self.auth = {"Authorization": f"Bearer {issue_token(42, secret_from_env())}"}

    def call(self, method: str, body: dict[str, str] | None = None, **headers: str) -> Response:
        request = Request(method, "/api/v2/users", headers=headers or self.auth, body=body or {})
        return self.app.dispatch(request)

    def test_lists_users_in_an_envelope(self) -> None:
        self.store.add("Ada", "ada@example.com")
        listed = self.call("GET")
        self.assertEqual(listed.status, 200)
        self.assertEqual(listed.body["count"], 1)
        self.assertEqual(listed.body["users"][0]["email"], "ada@example.com")

    def test_creates_a_user(self) -> None:
        created = self.call("POST", {"name": "Grace", "email": "grace@example.com"})
        self.assertEqual(created.status, 201)
        self.assertEqual(created.body["user"]["name"], "Grace")
        self.assertEqual(self.call("GET").body["count"], 1)

    def test_rejects_missing_or_bad_tokens(self) -> None:
        valid = issue_token(42, secret_from_env())
        wrong_key = issue_token(42, b"someone-else")
        expired = issue_token(42, secret_from_env(), ttl_seconds=-1)
        headers = ["", "Bearer", f"Token {valid}", f"Bearer {wrong_key}", f"Bearer {expired}"]
        for header in headers:
            with self.subTest(header=header):
                self.assertEqual(self.call("GET", Authorization=header).status, 401)

    def test_validates_the_body(self) -> None:
        self.assertEqual(self.call("POST", {"name": "Ada"}).status, 400)
        self.assertEqual(self.call("POST", {"name": " ", "email": "a@example.com"}).status, 400)

    def test_duplicate_email_is_409_ignoring_case(self) -> None:
        self.assertEqual(self.call("POST", {"name": "Ada", "email": "ada@example.com"}).status, 201)
        again = self.call("POST", {"name": "Ada", "email": "ADA@example.com"})
        self.assertEqual(again.status, 409)

    def test_v1_and_v2_share_the_store(self) -> None:
        self.call("POST", {"name": "Ada", "email": "ada@example.com"})
        v1 = self.app.dispatch(Request("GET", "/api/v1/users"))
        self.assertEqual([user["name"] for user in v1.body], ["Ada"])
