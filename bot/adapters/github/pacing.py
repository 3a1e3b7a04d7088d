"""Pacing the adapter's writes under GitHub's secondary rate limits on content creation.

GitHub allows about 80 content-creating requests a minute and 500 an hour (per App installation;
``research/github-steward-facts.md`` §6) and answers a request over the limit with a 403 or 429
carrying ``retry-after``. Every POST, PATCH, PUT and DELETE the adapter makes for an
installation goes through that installation's :class:`PacedTransport`, below githubkit (its
budget outlives the hourly token); reads pass straight through, unpaced. Rules:

1. Writes for one installation go one at a time (GitHub: "make requests serially"), each when
   it fits both sliding windows: fewer than ``per_minute`` writes completed
   in the last ``minute_s`` and fewer than ``per_hour`` in the last ``hour_s``.
2. A write counts from the moment its answer arrives, which is after GitHub counted it, so
   waiting out our window also waits out GitHub's.
3. An answer of 403 or 429 with ``retry-after`` (a secondary limit: something else spent the
   budget) is waited out, that long, and the write is sent again, up to ``max_retries`` times;
   then the answer goes up as it is (a ``GitHubError`` with ``retry_after``): never silently.
4. Creating an installation token (``…/access_tokens``, with the App's JWT) is not content.

GitHub also suggests a second between writes; the windows alone keep us under the stated limits,
and ``min_gap_s`` adds that spacing for a deployment that wants it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class WriteBudget:
    """How many content-creating requests one credential may make (GitHub's defaults)."""

    per_minute: int = 80
    per_hour: int = 500
    minute_s: float = 60.0
    hour_s: float = 3600.0
    min_gap_s: float = 0.0
    max_retries: int = 5


class Pacer:
    """Sliding per-minute and per-hour windows for one installation's writes."""

    def __init__(
        self,
        budget: WriteBudget,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self.lock = asyncio.Lock()  # rule 1: one write at a time
        self._done: deque[float] = deque()  # completion times within the hour window
        self.waited_s = 0.0

    def delay(self) -> float:
        """Seconds until one more write fits both windows (0 when it fits now)."""
        now, b = self.clock(), self.budget
        while self._done and self._done[0] <= now - b.hour_s:
            self._done.popleft()
        waits = [0.0]
        if len(self._done) >= b.per_hour:
            waits.append(self._done[-b.per_hour] + b.hour_s - now)
        recent = [t for t in self._done if t > now - b.minute_s]
        if len(recent) >= b.per_minute:
            waits.append(recent[-b.per_minute] + b.minute_s - now)
        if self._done and b.min_gap_s > 0:
            waits.append(self._done[-1] + b.min_gap_s - now)
        return max(waits)

    async def wait_turn(self) -> None:
        while (wait := self.delay()) > 0:
            self.waited_s += wait
            await self.sleep(wait)

    def wrote(self) -> None:
        """A write just completed (rule 2)."""
        self._done.append(self.clock())


def secondary_wait(response: httpx.Response) -> float | None:
    """GitHub's ``retry-after`` on a 403 or 429 (a secondary limit), else None."""
    if response.status_code not in (403, 429):
        return None
    value = response.headers.get("retry-after")
    try:
        return None if value is None else max(float(value), 0.0)
    except ValueError:
        return None


class PacedTransport(httpx.AsyncBaseTransport):
    """One installation's requests through ``inner`` (the shared pool), its writes paced."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        budget: WriteBudget,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.budget = budget
        self.pacer = Pacer(budget, clock=clock, sleep=sleep)
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in WRITE_METHODS or request.url.path.endswith("/access_tokens"):
            return await self.inner.handle_async_request(request)
        pacer = self.pacer
        async with pacer.lock:
            for attempt in range(self.budget.max_retries + 1):
                await pacer.wait_turn()
                try:
                    response = await self.inner.handle_async_request(request)
                except BaseException:
                    pacer.wrote()  # it may have reached GitHub: count it
                    raise
                wait = secondary_wait(response)
                if wait is None:
                    pacer.wrote()
                    return response
                if attempt == self.budget.max_retries:
                    break
                await response.aclose()
                log.warning(
                    "github_write_rate_limited",
                    extra={"path": request.url.path, "retry_after_s": wait, "attempt": attempt},
                )
                await self._sleep(math.ceil(wait * 1000) / 1000)
        return response

    async def aclose(self) -> None:  # githubkit closes its short-lived clients: keep the pool
        return None
