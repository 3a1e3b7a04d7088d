import unittest

from app.api import Request, Response, Router, create_app


class RouterTest(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()
        self.router.add("get", "/ping", lambda request: Response(200, "pong"))

    def test_dispatches_on_method_and_path(self) -> None:
        self.assertEqual(self.router.dispatch(Request("GET", "/ping")), Response(200, "pong"))

    def test_unknown_route_is_404(self) -> None:
        self.assertEqual(self.router.dispatch(Request("POST", "/ping")).status, 404)
        self.assertEqual(self.router.dispatch(Request("GET", "/pong")).status, 404)

    def test_lists_its_routes(self) -> None:
        self.assertEqual(self.router.routes(), [("GET", "/ping")])


class UsersV1Test(unittest.TestCase):
    def setUp(self) -> None:
        self.app = create_app()

    def test_create_then_list(self) -> None:
        body = {"name": "Ada", "email": "ada@example.com"}
        created = self.app.dispatch(Request("POST", "/api/v1/users", body=body))
        self.assertEqual(created.status, 201)
        self.assertEqual(created.body, {"id": 1, "name": "Ada", "email": "ada@example.com"})
        listed = self.app.dispatch(Request("GET", "/api/v1/users"))
        self.assertEqual(listed.body, [created.body])

    def test_create_needs_a_name_and_an_email(self) -> None:
        bad = self.app.dispatch(Request("POST", "/api/v1/users", body={"name": "Ada"}))
        self.assertEqual(bad.status, 400)
