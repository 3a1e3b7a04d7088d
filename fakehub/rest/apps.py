"""App and installation routes: the App itself, its installations and their tokens, the
repositories a token reaches, and the App's webhook deliveries."""

from __future__ import annotations

import time
from typing import Any

from fakehub.auth import ApiError, not_found, require_app
from fakehub.records import Installation
from fakehub.rest.context import Ctx, Result, paginate
from fakehub.state import PERMISSION_LEVELS, iso

NOT_ACCESSIBLE = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)


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


def _installation(ctx: Ctx) -> Installation:
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


TABLE: list[tuple[str, list[str], Any]] = [
    ("/app", ["GET"], get_app),
    ("/app/installations", ["GET"], list_installations),
    ("/app/installations/{installation_id}", ["GET"], get_installation),
    ("/app/installations/{installation_id}/access_tokens", ["POST"], create_access_token),
    ("/app/hook/deliveries", ["GET"], list_deliveries),
    ("/app/hook/deliveries/{delivery_id}/attempts", ["POST"], redeliver),
    ("/installation/repositories", ["GET"], installation_repositories),
    ("/installation/token", ["DELETE"], revoke_installation_token),
    ("/repos/{owner}/{repo}/installation", ["GET"], get_repo_installation),
]
