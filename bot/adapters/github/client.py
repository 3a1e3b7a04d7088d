"""The adapter's core: App authentication, one shared transport, and error classification.

HTTP failures are classified here once (:class:`GitHubError` with ``status``), so nothing else
inspects status codes. The area modules (apps, repos, issues, pulls) add domain verbs on top of
:class:`AdapterBase`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub
from githubkit.cache.mem_cache import MemCacheStrategy
from githubkit.exception import RequestError, RequestFailed
from githubkit.retry import RetryOption

from bot.adapters.github.records import RepoInfo


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
    """A GitHub API call failed; ``status`` is the HTTP status (0 when there was no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _retry(exc: Exception, count: int) -> RetryOption:
    """Retry 5xx and rate limits briefly; never sleep long inside a request (requeue instead)."""
    status = getattr(getattr(exc, "response", None), "status_code", 0)
    if count < 2 and (status >= 500 or status in (403, 429) and "rate limit" in str(exc).lower()):
        return RetryOption(True, timedelta(seconds=0.5 * (count + 1)))
    return RetryOption(False)


class AdapterBase:
    """What every area of the adapter shares: the App client, installation clients, caches."""

    def __init__(self, *, app_id: int, private_key: str, base_url: str) -> None:
        # A small pool: httpcore checks every pooled connection on each request and each
        # response (a quarter of the bot's GitHub-call CPU with 100 connections, profiled);
        # further requests wait for a free connection. The dispatch bench showed no latency
        # difference between 16 and 100; GitHub asks integrations not to send many at once.
        self._transport = _SharedTransport(
            retries=1, limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)
        )
        self._base_url = base_url
        self._app = GitHub(
            AppAuthStrategy(app_id, private_key),
            async_transport=self._transport,
            base_url=base_url,
            http_cache=False,
            auto_retry=_retry,
            timeout=30.0,
            user_agent="stoneforge-bot",
            # Tokens are cached per adapter, not per process: two Apps (or two GitHub hosts)
            # in one process must never share an installation token.
            cache_strategy=MemCacheStrategy(),
        )
        self._clients: dict[int, GitHub[Any]] = {}
        self._repo_cache: dict[str, RepoInfo] = {}
        self._required_cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._perm_cache: dict[tuple[str, str], tuple[float, str]] = {}
        # (repo, issue, marker) -> id of our comment carrying that marker (saves a listing)
        self._comment_ids: dict[tuple[str, int, str], int] = {}

    async def aclose(self) -> None:
        await self._transport.shutdown()

    def _gh(self, installation_id: int) -> GitHub[Any]:
        client = self._clients.get(installation_id)
        if client is None:
            client = self._app.with_auth(self._app.auth.as_installation(installation_id))
            self._clients[installation_id] = client
        return client

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except RequestFailed as exc:
            resp = exc.response
            try:
                message = str(resp.json().get("message", ""))
            except Exception:  # noqa: BLE001 - error bodies are not always JSON
                message = resp.text[:200]
            raise GitHubError(resp.status_code, message) from None
        except (RequestError, TimeoutError, OSError) as exc:
            raise GitHubError(0, f"no answer from GitHub: {exc}") from None

    async def _pages(self, fetch: Callable[[int], Any], *, limit: int = 10) -> list[Any]:
        """Every item of a paginated list (``fetch(page)`` asks for 100 per page), oldest
        first, up to ``limit`` pages."""
        items: list[Any] = []
        for page in range(1, limit + 1):
            chunk = (await self._call(fetch(page))).json()
            items += chunk
            if len(chunk) < 100:
                break
        return items
