"""GitHub's secondary rate limit on content creation, when the switch is on.

GitHub: "no more than 80 content-generating requests per minute and no more than 500
content-generating requests per hour" (per user or App installation), answered with a 403 and
``retry-after`` when exceeded. Here every request that creates content counts
(:func:`counts_as_content`), per installation (whichever of its tokens) or per user
(:func:`budget_key`), in sliding windows. Only admitted requests count.

``minute_s`` scales the windows so tests run in seconds (8 a minute with a 1-second minute);
the hour is 60 minutes of that length unless ``hour_s`` says otherwise. ``accepted`` and
``rejected`` count the content-creating requests let through and turned away.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable

from fakehub.state import State

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
MESSAGE = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from content "
    "creation. Please retry your request again later. If you reach out to GitHub Support for "
    "help, please include the request ID {request_id}."
)
DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
    "#about-secondary-rate-limits"
)


#: POST paths that create content: an issue, a comment, a sub-issue or dependency link, a pull
#: request, a review or a review comment (the bot's pacer, bot/adapters/github/pacing.py, paces
#: the same; labels, reactions, check runs, edits, merges and deletions are not content).
_CONTENT_PATHS = re.compile(
    r"/repos/[^/]+/[^/]+/(?:issues|issues/\d+/comments|issues/\d+/sub_issues"
    r"|issues/\d+/dependencies/blocked_by|pulls|pulls/\d+/(?:reviews|comments))$"
)


def counts_as_content(method: str, path: str) -> bool:
    return method == "POST" and _CONTENT_PATHS.search(path) is not None


def budget_key(state: State, authorization: str) -> str:
    """Whose budget a request spends: its installation's, its user's, else its credential's."""
    credential = authorization.strip().partition(" ")[2].strip()
    with state.lock:
        token = state.tokens.get(credential)
        if token is not None:
            return f"installation:{token.installation.id}"
        user = state.user_by_token(credential)
    return f"user:{user.login}" if user is not None else f"credential:{authorization}"


class ContentLimiter:
    """Sliding windows of admitted content-creating requests, per budget key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.accepted = 0
        self.rejected = 0
        self._stamps: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(
        self,
        key: str,
        *,
        per_minute: int,
        per_hour: int,
        minute_s: float,
        hour_s: float | None = None,
    ) -> int | None:
        """None when the request may go on (and it is counted), else the ``retry-after``
        seconds (a whole number, at least 1, as GitHub sends)."""
        hour = hour_s if hour_s is not None else 60 * minute_s
        with self._lock:
            now = self.clock()
            stamps = self._stamps.setdefault(key, deque())
            while stamps and stamps[0] <= now - hour:
                stamps.popleft()
            waits = []
            if len(stamps) >= per_hour:
                waits.append(stamps[-per_hour] + hour - now)
            recent = [t for t in stamps if t > now - minute_s]
            if len(recent) >= per_minute:
                waits.append(recent[-per_minute] + minute_s - now)
            if waits:
                self.rejected += 1
                return max(1, math.ceil(max(waits)))
            stamps.append(now)
            self.accepted += 1
            return None

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"accepted": self.accepted, "rejected": self.rejected}

    def reset(self) -> None:
        with self._lock:
            self._stamps.clear()
            self.accepted = self.rejected = 0
