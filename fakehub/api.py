"""fakehub's REST API under ``/api/v3``: the request plumbing and the App, installation and
repository routes. Issue routes live in ``api_issues.py``, pull request and check routes in
``api_pulls.py``.

Handlers are plain synchronous functions (Starlette runs them in its thread pool) taking a
:class:`Ctx` and returning ``(status, body)`` or ``(status, body, headers)``; an
:class:`~fakehub.auth.ApiError` becomes GitHub's error body.
"""

from __future__ import annotations

import base64
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
from fakehub.auth import (
    Actor,
    ApiError,
    authenticate,
    not_found,
    require_app,
    require_repo,
)
from fakehub.state import PERMISSION_LEVELS, Repo, iso

NOT_ACCESSIBLE = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)
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


# -- App routes ------------------------------------------------------------------------------


def get_app(ctx: Ctx) -> Result:
    app = require_app(ctx.actor)
    body = ctx.hub.payloads.app(app)
    body["installations_count"] = sum(1 for i in ctx.state.installations.values() if i.app is app)
    return 200, body


def list_installations(ctx: Ctx) -> Result:
    app = require_app(ctx.actor)
    items = [
        ctx.hub.payloads.installation(i) for i in ctx.state.installations.values() if i.app is app
    ]
    chunk, headers = paginate(ctx, items)
    return 200, chunk, headers


def _installation(ctx: Ctx):  # noqa: ANN202
    app = require_app(ctx.actor)
    inst = ctx.state.installations.get(ctx.int_param("installation_id"))
    if inst is None or inst.app is not app:
        raise not_found()
    return inst


def get_installation(ctx: Ctx) -> Result:
    return 200, ctx.hub.payloads.installation(_installation(ctx))


def create_access_token(ctx: Ctx) -> Result:
    inst = _installation(ctx)
    names = ctx.field("repositories", list)
    ids = ctx.field("repository_ids", list)
    perms = ctx.field("permissions", dict)
    repo_ids: list[int] | None = None
    if names is not None or ids is not None:
        repo_ids = []
        for name in names or []:
            repo = ctx.state.repo(inst.account.login, str(name))
            if repo is None or repo.id not in inst.repository_ids:
                raise ApiError(422, NOT_ACCESSIBLE)
            repo_ids.append(repo.id)
        for rid in ids or []:
            if rid not in inst.repository_ids:
                raise ApiError(422, NOT_ACCESSIBLE)
            repo_ids.append(rid)
    if perms is not None:
        for key, level in perms.items():
            have = inst.permissions.get(key)
            if have is None or PERMISSION_LEVELS.get(level, 99) > PERMISSION_LEVELS.get(have, 0):
                raise ApiError(
                    422, "The permissions requested are not granted to this installation."
                )  # noqa: E501
    tok = ctx.state.issue_token(inst, repo_ids, perms)
    body: dict[str, Any] = {
        "token": tok.token,
        "expires_at": iso(tok.expires_at),
        "permissions": dict(tok.permissions),
        "repository_selection": "selected",
    }
    if repo_ids is not None:
        body["repositories"] = [
            ctx.hub.payloads.repo(r) for r in map(ctx.state.repo_by_id, repo_ids) if r
        ]
    return 201, body


def get_repo_installation(ctx: Ctx) -> Result:
    app = require_app(ctx.actor)
    repo = ctx.state.repo(ctx.params["owner"], ctx.params["repo"])
    if repo is None:
        raise not_found()
    for inst in ctx.state.installations_for(repo):
        if inst.app is app:
            return 200, ctx.hub.payloads.installation(inst)
    raise not_found()


def revoke_installation_token(ctx: Ctx) -> Result:
    """``DELETE /installation/token``: the token revokes itself; later use gets 401."""
    if ctx.actor.kind != "installation" or ctx.actor.token is None:
        raise ApiError(403, "This endpoint requires an installation access token.")
    with ctx.state.lock:
        ctx.state.tokens.pop(ctx.actor.token.token, None)
    ctx.state.record("token_revoked", installation=ctx.actor.token.installation.id)
    return 204, None


def installation_repositories(ctx: Ctx) -> Result:
    if ctx.actor.kind != "installation" or ctx.actor.token is None:
        raise ApiError(403, "This endpoint requires an installation access token.")
    repos = [ctx.state.repo_by_id(i) for i in ctx.actor.token.repository_ids]
    items = [ctx.hub.payloads.repo(r) for r in repos if r is not None]
    chunk, headers = paginate(ctx, items)
    return (
        200,
        {"total_count": len(items), "repository_selection": "selected", "repositories": chunk},
        headers,
    )


def list_deliveries(ctx: Ctx) -> Result:
    app = require_app(ctx.actor)
    urls = {app.webhook_url} if app.webhook_url else set()
    records = [
        r
        for r in ctx.hub.sender.records()
        if getattr(r, "url", None) in urls or _record_app(ctx, r) is app
    ]
    records.sort(key=lambda r: r.id, reverse=True)
    status_filter = ctx.query.get("status")
    items = []
    for r in records:
        ok = 200 <= (r.status_code or 0) < 300
        if status_filter == "success" and not ok or status_filter == "failure" and ok:
            continue
        items.append(
            {
                "id": r.id,
                "guid": r.guid,
                "delivered_at": r.delivered_at
                if isinstance(r.delivered_at, str)
                else iso(r.delivered_at or time.time()),
                "redelivery": bool(r.redelivery),
                "duration": float(r.duration or 0.0),
                "status": r.status,
                "status_code": int(r.status_code or 0),
                "event": r.event,
                "action": r.action,
                "installation_id": r.installation_id,
                "repository_id": r.repository_id,
            }
        )
    chunk, headers = paginate(ctx, items)
    return 200, chunk, headers


def _record_app(ctx: Ctx, record: Any) -> Any:
    inst = ctx.state.installations.get(record.installation_id or -1)
    return inst.app if inst else None


def redeliver(ctx: Ctx) -> Result:
    app = require_app(ctx.actor)
    record_id = ctx.int_param("delivery_id")
    if not any(r.id == record_id for r in ctx.hub.sender.records()):
        raise not_found()
    # GitHub redelivers to the hook's URL as configured now, not as it was then.
    ctx.hub.sender.redeliver(record_id, url=app.webhook_url)
    return 202, {}


# -- repository routes -----------------------------------------------------------------------


def get_repo(ctx: Ctx) -> Result:
    repo = ctx.repo()
    body = ctx.hub.payloads.repo(repo, full=True)
    role = (
        "admin"
        if ctx.actor.kind == "user" and ctx.actor.user is repo.owner
        else (ctx.state.permission(repo, ctx.actor.user) if ctx.actor.kind == "user" else "write")
    )
    level = PERMISSION_LEVELS.get(role, 1)
    body["permissions"] = {
        "admin": level >= 5,
        "maintain": level >= 4,
        "push": level >= 3,
        "triage": level >= 2,
        "pull": level >= 1,
    }
    return 200, body


def _branch_json(ctx: Ctx, repo: Repo, name: str, sha: str) -> dict[str, Any]:
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    info = ctx.hub.store.commit_info(repo.full_name, sha)
    prot = repo.protection.get(name)
    contexts = prot.contexts if prot else []
    return {
        "name": name,
        "commit": commit_json(ctx, repo, info),
        "_links": {
            "self": f"{api}/branches/{name}",
            "html": f"{ctx.hub.url}/{repo.full_name}/tree/{name}",
        },
        "protected": prot is not None,
        "protection": {
            "enabled": prot is not None,
            "required_status_checks": {
                "enforcement_level": "non_admins" if prot else "off",
                "contexts": list(contexts),
                "checks": [{"context": c, "app_id": None} for c in contexts],
            },
        },
        "protection_url": f"{api}/branches/{name}/protection",
    }


def commit_json(ctx: Ctx, repo: Repo, info: Any) -> dict[str, Any]:
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    html = f"{ctx.hub.url}/{repo.full_name}"
    return {
        "sha": info.sha,
        "node_id": f"C_{info.sha[:20]}",
        "commit": {
            "author": {
                "name": info.author_name,
                "email": info.author_email,
                "date": info.author_date,
            },
            "committer": {
                "name": info.committer_name,
                "email": info.committer_email,
                "date": info.committer_date,
            },
            "message": info.message,
            "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
            "url": f"{api}/git/commits/{info.sha}",
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "url": f"{api}/commits/{info.sha}",
        "html_url": f"{html}/commit/{info.sha}",
        "comments_url": f"{api}/commits/{info.sha}/comments",
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in info.parents
        ],
    }


def get_branch(ctx: Ctx) -> Result:
    repo = ctx.repo("contents")
    name = ctx.params["branch"]
    sha = ctx.hub.store.ref_sha(repo.full_name, name)
    if sha is None:
        raise ApiError(404, "Branch not found")
    return 200, _branch_json(ctx, repo, name, sha)


def get_required_checks(ctx: Ctx) -> Result:
    repo = ctx.repo("administration")
    name = ctx.params["branch"]
    prot = repo.protection.get(name)
    if prot is None or ctx.hub.store.ref_sha(repo.full_name, name) is None:
        raise ApiError(404, "Branch not protected")
    url = f"{ctx.hub.payloads.api}/repos/{repo.full_name}/branches/{name}/protection/required_status_checks"  # noqa: E501
    return 200, {
        "url": url,
        "strict": prot.strict,
        "contexts": list(prot.contexts),
        "checks": [{"context": c, "app_id": None} for c in prot.contexts],
        "contexts_url": f"{url}/contexts",
    }


def get_ref(ctx: Ctx) -> Result:
    repo = ctx.repo("contents")
    name = ctx.params["branch"]
    sha = ctx.hub.store.ref_sha(repo.full_name, name)
    if sha is None:
        raise not_found()
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    return 200, {
        "ref": f"refs/heads/{name}",
        "node_id": f"REF_{repo.id}_{name}",
        "url": f"{api}/git/refs/heads/{name}",
        "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"},
    }


def delete_ref(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    name = ctx.params["branch"]
    before = ctx.hub.store.ref_sha(repo.full_name, name)
    if before is None or not ctx.hub.store.delete_branch(repo.full_name, name):
        raise ApiError(422, "Reference does not exist")
    from fakehub.gitstore import ZERO_SHA

    ctx.hub.on_branch_moved(repo, f"refs/heads/{name}", before, ZERO_SHA, ctx.actor.user)
    return 204, None


def get_contents(ctx: Ctx) -> Result:
    repo = ctx.repo("contents")
    path = ctx.params["path"].strip("/")
    ref = ctx.query.get("ref") or repo.default_branch
    data = ctx.hub.store.read_file(repo.full_name, ref, path)
    if data is None:
        raise not_found()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    html = f"{ctx.hub.url}/{repo.full_name}/blob/{ref}/{path}"
    git_url = f"{api}/git/blobs/{blob}"
    encoded = base64.encodebytes(data).decode()
    return 200, {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": encoded,
        "sha": blob,
        "url": f"{api}/contents/{path}?ref={ref}",
        "git_url": git_url,
        "html_url": html,
        "download_url": f"{ctx.hub.url}/{repo.full_name}/raw/{ref}/{path}",
        "_links": {"self": f"{api}/contents/{path}?ref={ref}", "git": git_url, "html": html},
    }


def get_collaborator_permission(ctx: Ctx) -> Result:
    repo = ctx.repo()
    user = ctx.state.user(ctx.params["username"])
    if user is None:
        raise not_found()
    role = ctx.state.permission(repo, user)
    legacy = {"maintain": "write", "triage": "read"}.get(role, role)
    if role == "none" or (
        role == "read" and user.login.lower() not in repo.collaborators and user is not repo.owner
    ):
        legacy, role = "none", "none" if repo.private else "read"
        legacy = "read" if role == "read" else "none"
    body_user = ctx.hub.payloads.user(user)
    level = PERMISSION_LEVELS.get(role, 0)
    body_user["permissions"] = {
        "admin": level >= 5,
        "maintain": level >= 4,
        "push": level >= 3,
        "triage": level >= 2,
        "pull": level >= 1,
    }
    body_user["role_name"] = role
    return 200, {"permission": legacy, "role_name": role, "user": body_user}


def routes(hub: Hub, faults: ApiFaults) -> list[Route]:
    from fakehub import api_actions, api_issues, api_pulls

    table: list[tuple[str, list[str], Handler]] = [
        ("/app", ["GET"], get_app),
        ("/app/installations", ["GET"], list_installations),
        ("/app/installations/{installation_id}", ["GET"], get_installation),
        ("/app/installations/{installation_id}/access_tokens", ["POST"], create_access_token),
        ("/app/hook/deliveries", ["GET"], list_deliveries),
        ("/app/hook/deliveries/{delivery_id}/attempts", ["POST"], redeliver),
        ("/installation/repositories", ["GET"], installation_repositories),
        ("/installation/token", ["DELETE"], revoke_installation_token),
        ("/repos/{owner}/{repo}", ["GET"], get_repo),
        ("/repos/{owner}/{repo}/installation", ["GET"], get_repo_installation),
        (
            "/repos/{owner}/{repo}/branches/{branch:path}/protection/required_status_checks",
            ["GET"],
            get_required_checks,
        ),
        ("/repos/{owner}/{repo}/branches/{branch:path}", ["GET"], get_branch),
        ("/repos/{owner}/{repo}/git/ref/heads/{branch:path}", ["GET"], get_ref),
        ("/repos/{owner}/{repo}/git/refs/heads/{branch:path}", ["DELETE"], delete_ref),
        ("/repos/{owner}/{repo}/contents/{path:path}", ["GET"], get_contents),
        (
            "/repos/{owner}/{repo}/collaborators/{username}/permission",
            ["GET"],
            get_collaborator_permission,
        ),
        *api_issues.TABLE,
        *api_pulls.TABLE,
        *api_actions.TABLE,
    ]
    return [
        Route("/api/v3" + path, make_endpoint(hub, faults, handler), methods=methods)
        for path, methods, handler in table
    ]
