import unittest

from app.api import Request, Response, Router, create_app
from app.ratelimit import RateLimiter


class RequestLoggingTest(unittest.TestCase):
    def test_each_request_is_logged_with_its_status(self) -> None:
        app = create_app()
        with self.assertLogs("app.requests", level="INFO") as logs:
            app.dispatch(Request("GET", "/api/v1/users", client="10.1.2.3"))
            app.dispatch(Request("DELETE", "/nowhere"))
        self.assertEqual(len(logs.records), 2)
        self.assertIn("GET /api/v1/users -> 200", logs.output[0])
        self.assertIn("client 10.1.2.3", logs.output[0])
        self.assertIn("DELETE /nowhere -> 404", logs.output[1])

    def test_throttled_requests_are_logged_too(self) -> None:
        limiter = RateLimiter(capacity=1, refill_per_second=0.0, clock=lambda: 0.0)
        router = Router(limiter=limiter)
        router.add("GET", "/ping", lambda request: Response(200, "pong"))
        with self.assertLogs("app.requests", level="INFO") as logs:
            router.dispatch(Request("GET", "/ping"))
            router.dispatch(Request("GET", "/ping"))
        self.assertIn("GET /ping -> 429", logs.output[1])
