"""Pacing the adapter's writes under GitHub's secondary rate limits on content creation.

GitHub allows about 80 content-creating requests a minute and 500 an hour (per App installation;
``research/github-steward-facts.md`` §6) and answers a request over the limit with a 403 or 429
carrying ``retry-after``. Every request the adapter makes for an installation goes through
that installation's :class:`PacedTransport`, below githubkit (its budget outlives the hourly
token). What creates content (:func:`creates_content`: an issue, a comment, a pull request, a
review, a sub-issue or dependency link) is paced; everything else (reads, labels, reactions,
check runs, edits, merges, deletions) passes straight through. Pacing every write instead
measured as a disaster: ``bench/dispatch.py``'s p50 went from ~0.1 s to 54 s, as the labels and
status edits of sixty tasks queued one by one behind an 80-a-minute budget. Rules:

1. Content-creating writes for one installation go one at a time (GitHub: "make requests
   serially"), each when it fits both sliding windows: fewer than ``per_minute`` completed
   in the last ``minute_s`` and fewer than ``per_hour`` in the last ``hour_s``.
2. A write counts from the moment its answer arrives, which is after GitHub counted it, so
   waiting out our window also waits out GitHub's.
3. An answer of 403 or 429 with ``retry-after`` (a secondary limit: something else spent the
   budget) is waited out, that long, and the write is sent again, up to ``max_retries`` times;
   then the answer goes up as it is (a ``GitHubError`` with ``retry_after``): never silently.

GitHub also suggests a second between writes; the windows alone keep us under the stated limits,
and ``min_gap_s`` adds that spacing for a deployment that wants it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

#: POST paths (after the API's base path) that create content on GitHub.
_CONTENT_PATHS = re.compile(
    r"/repos/[^/]+/[^/]+/(?:"
    r"issues"  # an issue
    r"|issues/\d+/comments"  # a comment
    r"|issues/\d+/sub_issues"  # a sub-issue link
    r"|issues/\d+/dependencies/blocked_by"  # a dependency link
    r"|pulls"  # a pull request
    r"|pulls/\d+/(?:reviews|comments)"  # a review, a review comment
    r")$"
)


def creates_content(method: str, path: str) -> bool:
    """Whether GitHub counts this request against its content-creation limit."""
    return method == "POST" and _CONTENT_PATHS.search(path) is not None


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
        if not creates_content(request.method, request.url.path):
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
