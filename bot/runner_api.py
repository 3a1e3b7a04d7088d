"""The HTTP API runners (and the GitHub Actions job) use: register, claim, heartbeat, result.

Who may call it:
- a registered runner, with the token it got from ``POST /runner/register`` (the bot stores
  only the token's SHA-256);
- any runner presenting the shared ``STONEFORGE_RUNNER_TOKEN`` (simple set-ups, the demo);
- for one job's heartbeat and result only, that job's single-use Actions job token.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from bot.dispatch import Dispatcher
from bot.settings import BotSettings
from bot.store import RunnerRecord, Store

REGISTRATION_TTL_S = 24 * 3600


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_registration_token(store: Store, *, ttl_s: float = REGISTRATION_TTL_S) -> str:
    """A one-time registration token a maintainer hands to a new runner's operator."""
    token = "sfreg_" + secrets.token_urlsafe(24)
    store.create_registration_token(token_hash(token), now=time.time(), ttl_s=ttl_s)
    return token


def _bearer(authorization: str | None) -> str | None:
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization.removeprefix("Bearer ").strip() or None


def runner_router(settings: BotSettings) -> APIRouter:
    router = APIRouter(prefix="/runner")

    async def identify(
        request: Request, authorization: str | None, job_id: str | None = None
    ) -> str:
        """The caller's runner name, or 401."""
        token = _bearer(authorization)
        if token is None:
            raise HTTPException(status_code=401, detail="missing runner token")
        if settings.runner_token and hmac.compare_digest(token, settings.runner_token):
            return ""
        store: Store = request.app.state.bot.store
        record: RunnerRecord | None = await asyncio.to_thread(
            store.runner_by_token, token_hash(token)
        )
        if record is not None:
            await asyncio.to_thread(store.touch_runner, record.runner_id, time.time())
            return record.name
        actions = getattr(request.app.state, "actions_backend", None)
        if job_id is not None and actions is not None and actions.authorizes(job_id, token):
            return "actions"
        raise HTTPException(status_code=401, detail="unknown runner token")

    @router.post("/register", status_code=201)
    async def register(request: Request) -> Response:
        body = await _json(request)
        store: Store = request.app.state.bot.store
        reg = str(body.get("registration_token") or "")
        if not reg or not await asyncio.to_thread(
            functools.partial(store.redeem_registration_token, token_hash(reg), now=time.time())
        ):
            return JSONResponse({"message": "unknown, used or expired registration token"}, 401)
        runner_token = "sfrun_" + secrets.token_urlsafe(32)
        runner_id = uuid.uuid4().hex
        labels = [str(x) for x in body.get("labels") or []][:20]
        await asyncio.to_thread(
            functools.partial(
                store.add_runner,
                runner_id,
                name=str(body.get("name") or runner_id)[:100],
                labels=labels,
                capacity=max(1, min(int(body.get("capacity") or 1), 64)),
                token_hash=token_hash(runner_token),
                now=time.time(),
            )
        )
        return JSONResponse({"runner_id": runner_id, "runner_token": runner_token}, 201)

    @router.post("/claim")
    async def claim(request: Request, authorization: str | None = Header(default=None)) -> Response:
        name = await identify(request, authorization)
        body = await _json(request)
        dispatcher: Dispatcher = request.app.state.dispatcher
        job = await dispatcher.claim(
            name or str(body.get("runner") or "runner"),
            str(body.get("worker") or "w"),
            float(body.get("wait_s") or 0),
            frozenset(str(a) for a in body.get("unavailable_agents") or ()),
        )
        if job is None:
            return Response(status_code=204)
        return JSONResponse(job)

    @router.post("/jobs/{job_id:path}/heartbeat")
    async def heartbeat(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        await identify(request, authorization, job_id)
        dispatcher: Dispatcher = request.app.state.dispatcher
        if not await dispatcher.heartbeat(job_id):
            return JSONResponse({"message": "job is no longer running"}, status_code=410)
        return JSONResponse({"ok": True})

    @router.post("/jobs/{job_id:path}/result")
    async def result(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        who = await identify(request, authorization, job_id)
        dispatcher: Dispatcher = request.app.state.dispatcher
        if not await dispatcher.job_result(job_id, await _json(request)):
            return JSONResponse({"message": "job is no longer running"}, status_code=410)
        if who == "actions":
            request.app.state.actions_backend.discard(job_id)  # the job token is spent
        return JSONResponse({"ok": True})

    return router


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="body must be JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return data
