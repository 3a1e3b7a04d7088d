"""The HTTP API runners (and the GitHub Actions job) use: register, claim, heartbeat, result,
transcripts; and the public, capability-addressed ``GET /transcripts/{id}``.

Who may call it:
- a registered runner, with the token it got from ``POST /runner/register`` (the bot stores
  only the token's SHA-256);
- any runner presenting the shared ``STONEFORGE_RUNNER_TOKEN`` (simple set-ups, the demo);
- for one job's heartbeat, transcripts and result only, that job's single-use Actions job token.

Anyone holding a transcript's link may read it: its id is 32 random URL-safe characters.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from bot import transcripts
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

    async def caller(
        request: Request, authorization: str | None, job_id: str | None = None
    ) -> tuple[str, tuple[str, ...] | None]:
        """The caller's runner name and, for a registered runner, its stored labels; or 401."""
        token = _bearer(authorization)
        if token is None:
            raise HTTPException(status_code=401, detail="missing runner token")
        if settings.runner_token and hmac.compare_digest(token, settings.runner_token):
            return "", None
        store: Store = request.app.state.bot.store
        record: RunnerRecord | None = await asyncio.to_thread(
            store.runner_by_token, token_hash(token)
        )
        if record is not None:
            await asyncio.to_thread(store.touch_runner, record.runner_id, time.time())
            return record.name, record.labels
        actions = getattr(request.app.state, "actions_backend", None)
        if job_id is not None and actions is not None and actions.authorizes(job_id, token):
            return "actions", None
        raise HTTPException(status_code=401, detail="unknown runner token")

    async def identify(
        request: Request, authorization: str | None, job_id: str | None = None
    ) -> str:
        """The caller's runner name, or 401."""
        return (await caller(request, authorization, job_id))[0]

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
        name, registered_labels = await caller(request, authorization)
        body = await _json(request)
        # A registered runner's labels are the ones it registered with (a runner cannot claim
        # work meant for others by sending more); the shared-token runner states its own.
        labels = registered_labels
        if labels is None:
            labels = tuple(str(label) for label in body.get("labels") or ())
        dispatcher: Dispatcher = request.app.state.dispatcher
        job = await dispatcher.claim(
            name or str(body.get("runner") or "runner"),
            str(body.get("worker") or "w"),
            float(body.get("wait_s") or 0),
            frozenset(str(a) for a in body.get("unavailable_agents") or ()),
            labels=frozenset(labels),
            prefetch=body.get("prefetch") is True,
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

    @router.post("/jobs/{job_id:path}/transcripts", status_code=201)
    async def transcript(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        who = await identify(request, authorization, job_id)
        body = await _limited_body(request, transcripts.MAX_UPLOAD_BYTES)
        if body is None:
            return JSONResponse({"message": "transcript too large"}, status_code=413)
        upload = _parse(body)
        if not isinstance(upload.get("text"), str):
            return JSONResponse({"message": "text must be a string"}, status_code=400)
        dispatcher: Dispatcher = request.app.state.dispatcher
        task = await dispatcher._running(job_id)  # the job's current attempt, as for results
        if task is None:
            return JSONResponse({"message": "job is no longer running"}, status_code=410)
        store: Store = request.app.state.bot.store
        runner = task.worker or who or None
        tid = await asyncio.to_thread(
            functools.partial(transcripts.add, store, task, runner, upload, time.time())
        )
        request.app.state.bot.transcript_added(task)
        link = transcripts.url(settings.public_url, tid)
        return JSONResponse({"id": tid, "url": link}, status_code=201)

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


def transcript_router() -> APIRouter:
    """``GET /transcripts/{id}``: a stored transcript as plain text, to whoever has the link."""
    router = APIRouter()

    @router.get("/transcripts/{transcript_id}")
    async def read(transcript_id: str, request: Request) -> Response:
        store: Store = request.app.state.bot.store
        text = await asyncio.to_thread(transcripts.get, store, transcript_id)
        if text is None:
            return PlainTextResponse("no such transcript\n", status_code=404)
        return Response(
            text,
            media_type="text/plain; charset=utf-8",
            headers={
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "X-Robots-Tag": "noindex",
                "Cache-Control": "private, max-age=300",
            },
        )

    return router


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="body must be JSON") from None
    return _object(data)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(status_code=400, detail="body must be JSON") from None
    return _object(data)


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return data


async def _limited_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be longer than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
