import unittest

from app.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RateLimiterTest(unittest.TestCase):
    def test_allows_a_burst_up_to_capacity(self) -> None:
        limiter = RateLimiter(capacity=3, refill_per_second=1.0, clock=FakeClock())
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])

    def test_refills_over_time(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(capacity=1, refill_per_second=2.0, clock=clock)
        self.assertTrue(limiter.allow("a"))
        self.assertFalse(limiter.allow("a"))
        clock.now += 0.5
        self.assertTrue(limiter.allow("a"))

    def test_never_refills_beyond_capacity(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(capacity=2, refill_per_second=10.0, clock=clock)
        clock.now += 60
        self.assertEqual([limiter.allow("a") for _ in range(3)], [True, True, False])

    def test_keys_have_separate_buckets(self) -> None:
        limiter = RateLimiter(capacity=1, refill_per_second=0.0, clock=FakeClock())
        self.assertTrue(limiter.allow("a"))
        self.assertTrue(limiter.allow("b"))
        self.assertFalse(limiter.allow("a"))

    def test_rejects_nonsense_settings(self) -> None:
        with self.assertRaises(ValueError):
            RateLimiter(capacity=0, refill_per_second=1.0)
        with self.assertRaises(ValueError):
            RateLimiter(capacity=1, refill_per_second=-1.0)
