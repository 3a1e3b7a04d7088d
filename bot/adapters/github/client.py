"""The adapter's core: App authentication, one shared transport, and error classification.

HTTP failures are classified here once (:class:`GitHubError` with ``status``), so nothing else
inspects status codes. The area modules (apps, repos, issues, pulls) add domain verbs on top of
:class:`AdapterBase`.

Writes (POST, PATCH, PUT, DELETE) are paced under GitHub's secondary rate limits below
githubkit (:mod:`bot.adapters.github.pacing`), which also waits out a ``retry-after`` on a write.

Classification, in order: a rate limit (403 or 429 with ``retry-after`` or with
``x-ratelimit-remaining: 0``) is a ``GitHubError`` carrying ``retry_after``, never retried by
githubkit (GitHub asks to wait that long; the caller's next pass retries); a 5xx is retried
twice, briefly, then is a ``GitHubError``; any other error status is a ``GitHubError`` whose
message is GitHub's ``message``, or, for a body that is not GitHub's JSON (a proxy's HTML
page), the status's reason; no answer at all is status 0; and an answer whose body is not JSON
is a ``GitHubError`` with the answer's status when its JSON is read (:class:`Answer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub, Response
from githubkit.cache.mem_cache import MemCacheStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestError, RequestFailed
from githubkit.retry import RetryOption

from bot.adapters.github.pacing import PacedTransport, WriteBudget
from bot.adapters.github.records import RepoInfo
from bot.core.codeowners import OwnerRule


class _SharedTransport(httpx.AsyncHTTPTransport):
    """One connection pool for every request of the adapter.

    githubkit builds a fresh ``httpx.AsyncClient`` per request outside ``async with`` (which
    cannot span our background tasks) and closes it afterwards; a shared transport whose
    close is deferred to :meth:`GitHubAdapter.aclose` keeps connections (and TLS set-up) warm.
    """

    async def aclose(self) -> None:  # called by each short-lived client: keep the pool
        return None

    async def shutdown(self) -> None:
        await super().aclose()


class GitHubError(Exception):
    """A GitHub API call failed; ``status`` is the HTTP status (0 when there was no answer).

    ``retry_after``: for a rate limit, the seconds GitHub asks us to wait before trying again.
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Answer:
    """A successful answer from GitHub: its status, headers, and its JSON, where a body that
    is not JSON is a :class:`GitHubError` like any other failure."""

    __slots__ = ("_response",)

    def __init__(self, response: Response[Any, Any]) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    def json(self) -> Any:
        try:
            return self._response.json()
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise GitHubError(self.status_code, f"malformed JSON in the answer: {exc}") from None


def _error_message(resp: Response[Any, Any]) -> str:
    """GitHub's own ``message``; for any other body the status's reason, without markup."""
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        return str(data.get("message") or "")
    reason = resp.raw_response.reason_phrase or "error"
    text = resp.text.strip()
    if text.startswith("<") or "html" in resp.headers.get("content-type", ""):
        return f"{reason} (an HTML page, not GitHub's JSON)"
    return f"{reason}: {' '.join(text.split())[:200]}" if text else reason


def retry_policy(delay_s: float) -> Callable[[GitHubException, int], RetryOption]:
    """githubkit's ``auto_retry``: a 5xx twice, after ``delay_s`` then twice that; nothing
    else, and never a rate limit (its wait is GitHub's ``retry-after``: the caller requeues)."""

    def decide(exc: GitHubException, count: int) -> RetryOption:
        if isinstance(exc, RateLimitExceeded) or not isinstance(exc, RequestFailed):
            return RetryOption(False)
        if count < 2 and exc.response.status_code >= 500:
            # githubkit waits 60 s for a zero timedelta (it is falsy): never ask for zero.
            return RetryOption(True, timedelta(seconds=max(delay_s * (count + 1), 0.001)))
        return RetryOption(False)

    return decide


class AdapterBase:
    """What every area of the adapter shares: the App client, installation clients, caches."""

    def __init__(
        self,
        *,
        app_id: int,
        private_key: str,
        base_url: str,
        retry_delay_s: float = 0.5,
        write_budget: WriteBudget | None = None,
    ) -> None:
        # A small pool: httpcore checks every pooled connection on each request and each
        # response (a quarter of the bot's GitHub-call CPU with 100 connections, profiled);
        # further requests wait for a free connection. The dispatch bench showed no latency
        # difference between 16 and 100; GitHub asks integrations not to send many at once.
        self._transport = _SharedTransport(
            retries=1, limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)
        )
        self._write_budget = write_budget or WriteBudget()
        self._base_url = base_url
        self._app = GitHub(
            AppAuthStrategy(app_id, private_key),
            async_transport=self._transport,
            base_url=base_url,
            http_cache=False,
            auto_retry=retry_policy(retry_delay_s),
            timeout=30.0,
            user_agent="stoneforge-bot",
            # Tokens are cached per adapter, not per process: two Apps (or two GitHub hosts)
            # in one process must never share an installation token.
            cache_strategy=MemCacheStrategy(),
        )
        self._clients: dict[int, GitHub[Any]] = {}
        self._repo_cache: dict[str, RepoInfo] = {}
        self._required_cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        # (repo, branch) -> approving reviews its rulesets require (refreshed with the above)
        self._approvals_cache: dict[tuple[str, str], int] = {}
        # (repo, branch) -> the other rules that matter: "merge_queue", "code_owner_review"
        self._rule_flags: dict[tuple[str, str], frozenset[str]] = {}
        # (repo, branch) -> (expiry, its CODEOWNERS rules) (``gate.code_owner_rules``)
        self._owners_cache: dict[tuple[str, str], tuple[float, tuple[OwnerRule, ...]]] = {}
        self._perm_cache: dict[tuple[str, str], tuple[float, str]] = {}
        # (repo, issue, marker) -> id of our comment carrying that marker (saves a listing)
        self._comment_ids: dict[tuple[str, int, str], int] = {}

    async def aclose(self) -> None:
        await self._transport.shutdown()

    def _gh(self, installation_id: int) -> GitHub[Any]:
        client = self._clients.get(installation_id)
        if client is None:
            # Its own transport over the shared pool: the installation's writes are paced under
            # GitHub's secondary rate limits, whichever of its tokens they carry.
            paced = PacedTransport(self._transport, self._write_budget)
            config = dataclasses.replace(self._app.config, async_transport=paced)
            client = GitHub(self._app.auth.as_installation(installation_id), config=config)
            self._clients[installation_id] = client
        return client

    async def _call(self, coro: Coroutine[Any, Any, Response[Any, Any]]) -> Answer:
        try:
            return Answer(await coro)
        except RateLimitExceeded as exc:
            raise GitHubError(
                exc.response.status_code,
                _error_message(exc.response),
                retry_after=exc.retry_after.total_seconds(),
            ) from None
        except RequestFailed as exc:
            raise GitHubError(exc.response.status_code, _error_message(exc.response)) from None
        except (RequestError, TimeoutError, OSError) as exc:
            raise GitHubError(0, f"no answer from GitHub: {exc}") from None

    async def _pages(
        self,
        fetch: Callable[[int], Coroutine[Any, Any, Response[Any, Any]]],
        *,
        limit: int = 10,
    ) -> list[Any]:
        """Every item of a paginated list (``fetch(page)`` asks for 100 per page), oldest
        first, up to ``limit`` pages."""
        items: list[Any] = []
        for page in range(1, limit + 1):
            chunk = (await self._call(fetch(page))).json()
            items += chunk
            if len(chunk) < 100:
                break
        return items
