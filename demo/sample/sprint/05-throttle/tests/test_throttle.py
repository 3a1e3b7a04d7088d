import unittest

from app.api import Request, Response, Router, create_app
from app.ratelimit import RateLimiter


def ping_router(capacity: int) -> Router:
    limiter = RateLimiter(capacity=capacity, refill_per_second=0.0, clock=lambda: 0.0)
    router = Router(limiter=limiter)
    router.add("GET", "/ping", lambda request: Response(200, "pong"))
    return router


class RouterRateLimitTest(unittest.TestCase):
    def test_requests_over_the_limit_get_429(self) -> None:
        router = ping_router(capacity=2)
        statuses = [router.dispatch(Request("GET", "/ping")).status for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])

    def test_each_client_has_its_own_budget(self) -> None:
        router = ping_router(capacity=1)
        self.assertEqual(router.dispatch(Request("GET", "/ping", client="10.0.0.1")).status, 200)
        self.assertEqual(router.dispatch(Request("GET", "/ping", client="10.0.0.2")).status, 200)
        self.assertEqual(router.dispatch(Request("GET", "/ping", client="10.0.0.1")).status, 429)

    def test_router_without_a_limiter_never_throttles(self) -> None:
        router = Router()
        router.add("GET", "/ping", lambda request: Response(200, "pong"))
        statuses = {router.dispatch(Request("GET", "/ping")).status for _ in range(300)}
        self.assertEqual(statuses, {200})

    def test_the_app_is_rate_limited(self) -> None:
        app = create_app()
        statuses = {app.dispatch(Request("GET", "/api/v1/users")).status for _ in range(300)}
        self.assertEqual(statuses, {200, 429})
