"""fakehub's REST API under ``/api/v3``: the request plumbing (context, pagination, errors,
fault switches) and the route table. The routes live beside it: App and installation routes in
``api_apps.py``, repository routes in ``api_repos.py``, issue routes in ``api_issues.py``,
``api_comments.py`` and ``api_dependencies.py``, pull request routes in ``api_pulls.py`` and
``api_reviews.py``, check and status routes in ``api_checks.py``, and Actions in
``api_actions.py``.

Handlers are plain synchronous functions (Starlette runs them in its thread pool) taking a
:class:`Ctx` and returning ``(status, body)`` or ``(status, body, headers)``; an
:class:`~fakehub.auth.ApiError` becomes GitHub's error body.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakehub.api_hub import Hub
from fakehub.auth import Actor, ApiError, authenticate, not_found, require_repo
from fakehub.records import Repo

Result = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[["Ctx"], Result]


@dataclass
class ApiFaults:
    """REST fault switches, all off by default."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    secondary_rate_limit_rate: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def update(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key.startswith("_") or not hasattr(self, key):
                raise ValueError(f"unknown fault {key!r}")
            setattr(self, key, value)
        if "seed" in changes:
            self._rng.seed(self.seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


@dataclass
class Ctx:
    hub: Hub
    actor: Actor
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    request_path: str

    @property
    def state(self):  # noqa: ANN201 - convenience
        return self.hub.state

    def repo(self, permission: str = "metadata", level: str = "read") -> Repo:
        repo = self.state.repo(self.params["owner"], self.params["repo"])
        if repo is None:
            raise not_found()
        require_repo(self.state, self.actor, repo, permission, level)
        return repo

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise not_found() from None

    def field(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        if name not in body or body[name] is None:
            if required:
                raise ApiError(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
            return None
        value = body[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ApiError(
                422,
                f'Invalid request.\n\nInvalid type for "{name}".',
                documentation_url="https://docs.github.com/rest",
            )
        return value


def paginate(ctx: Ctx, items: list[Any], default: int = 30) -> tuple[list[Any], dict[str, str]]:
    """Page ``items`` with ``per_page``/``page`` and build GitHub's ``Link`` header."""
    try:
        per_page = max(1, min(100, int(ctx.query.get("per_page", default))))
        page = max(1, int(ctx.query.get("page", 1)))
    except ValueError:
        raise ApiError(422, "Invalid request.\n\nInvalid per_page or page.") from None
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    base = f"{ctx.hub.payloads.api}{ctx.request_path}"
    keep = {k: v for k, v in ctx.query.items() if k not in ("page", "per_page")}

    def link(n: int, rel: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {**keep, "per_page": per_page, "page": n}.items())
        return f'<{base}?{query}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return chunk, ({"Link": ", ".join(links)} if links else {})


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
        path = request.url.path.removeprefix("/api/v3")

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
            headers.update(result[2])  # type: ignore[misc]
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


def routes(hub: Hub, faults: ApiFaults) -> list[Route]:
    from fakehub import (
        api_actions,
        api_apps,
        api_checks,
        api_comments,
        api_dependencies,
        api_issues,
        api_pulls,
        api_repos,
        api_reviews,
    )

    # Starlette takes the first route that matches: /issues/comments/{comment_id} must come before
    # /issues/{issue_number}/..., as it did when the issue routes were one table.
    table: list[tuple[str, list[str], Handler]] = [
        *api_apps.TABLE,
        *api_repos.TABLE,
        *api_comments.TABLE,
        *api_issues.TABLE,
        *api_dependencies.TABLE,
        *api_pulls.TABLE,
        *api_reviews.TABLE,
        *api_checks.TABLE,
        *api_actions.TABLE,
    ]
    return [
        Route("/api/v3" + path, make_endpoint(hub, faults, handler), methods=methods)
        for path, methods, handler in table
    ]
