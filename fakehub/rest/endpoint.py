"""One REST handler as a Starlette endpoint: GitHub's response headers, the fault switches
(latency, random secondary rate limits, 5xx, and GitHub's limits on content creation:
:mod:`fakehub.rest.limits`), JSON parsing, authentication, and GitHub's error body for
an :class:`~fakehub.auth.ApiError`. Handlers are plain synchronous functions, run in Starlette's
thread pool.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fakehub.auth import Actor, ApiError, authenticate
from fakehub.hub import Hub
from fakehub.rest.context import Ctx, Handler, Result
from fakehub.rest.limits import DOCS, MESSAGE, ContentLimiter, budget_key, counts_as_content


@dataclass
class ApiFaults:
    """REST fault switches, all off by default."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    secondary_rate_limit_rate: float = 0.0
    seed: int | None = None
    #: GitHub's content-creation limits (``fakehub.rest.limits``): off by default
    content_limits: bool = False
    content_per_minute: int = 80
    content_per_hour: int = 500
    content_minute_s: float = 60.0
    content_hour_s: float | None = None  # None: 60 minutes of ``content_minute_s``
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _content: ContentLimiter = field(default_factory=ContentLimiter, repr=False)

    def update(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key.startswith("_") or not hasattr(self, key):
                raise ValueError(f"unknown fault {key!r}")
            setattr(self, key, value)
        if "seed" in changes:
            self._rng.seed(self.seed)

    def content_counts(self) -> dict[str, int]:
        """Content-creating requests accepted and rejected by the content limits so far."""
        return self._content.counts()

    def reset_content_counts(self) -> None:
        self._content.reset()

    def content_retry_after(self, key: str) -> int | None:
        """The ``retry-after`` for a content-creating request of ``key`` over the limits, else
        None (and it is counted)."""
        return self._content.admit(
            key,
            per_minute=self.content_per_minute,
            per_hour=self.content_per_hour,
            minute_s=self.content_minute_s,
            hour_s=self.content_hour_s,
        )

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


def make_endpoint(hub: Hub, faults: ApiFaults, handler: Handler, *, auth: bool = True) -> Any:
    async def endpoint(request: Request) -> Response:
        request_id = uuid.uuid4().hex[:16].upper()
        headers = {
            "X-GitHub-Request-Id": request_id,
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": request.headers.get(
                "x-github-api-version", "2022-11-28"
            ),
        }
        if faults.latency_s > 0:
            import asyncio

            await asyncio.sleep(faults.latency_s)
        if faults.roll(faults.secondary_rate_limit_rate):
            err = ApiError(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again. If you reach out to GitHub Support for help, please include the "
                f"request ID {request_id}.",
                documentation_url="https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            )
            return JSONResponse(err.body(), 403, {**headers, "Retry-After": "1"})
        path = request.url.path.removeprefix("/api/v3")
        wait = None
        if faults.content_limits and counts_as_content(request.method, path):
            key = budget_key(hub.state, request.headers.get("authorization") or "")
            wait = faults.content_retry_after(key)
        if wait is not None:
            err = ApiError(403, MESSAGE.format(request_id=request_id), documentation_url=DOCS)
            return JSONResponse(err.body(), 403, {**headers, "Retry-After": str(wait)})
        if faults.roll(faults.error_rate):
            status = 502 if faults.roll(0.5) else 503
            return JSONResponse(
                {"message": "Server Error"}
                if status == 502
                else {"message": "Service Unavailable"},
                status,
                headers,
            )
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            err = ApiError(400, "Problems parsing JSON")
            return JSONResponse(err.body(), 400, headers)

        def run() -> Result:
            actor = authenticate(hub.state, request.headers.get("authorization"))
            headers.update(rate_headers(actor))
            ctx = Ctx(hub, actor, dict(request.path_params), dict(request.query_params), body, path)
            return handler(ctx)

        try:
            result = await run_in_threadpool(run)
        except ApiError as err:
            return JSONResponse(err.body(), err.status, {**headers, **err.headers})
        status, content = result[0], result[1]
        if len(result) == 3:
            headers.update(result[2])
        if status == 204 or content is None:
            return Response(status_code=status, headers=headers)
        data = json.dumps(content, separators=(",", ":")).encode()
        headers["ETag"] = 'W/"' + hashlib.sha256(data).hexdigest()[:40] + '"'
        return Response(data, status, headers, media_type="application/json; charset=utf-8")

    return endpoint


def rate_headers(actor: Actor) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "4999",
        "X-RateLimit-Used": "1",
        "X-RateLimit-Reset": str(int(time.time()) + 3600),
        "X-RateLimit-Resource": "core",
    }
