"""The HTTP API runners (and the GitHub Actions job) use: register, claim, heartbeat, result,
transcripts; and the public, capability-addressed ``GET /transcripts/{id}``.

Who may call it:
- a registered runner, with the token it got from ``POST /runner/register`` (the bot stores
  only the token's SHA-256);
- any runner presenting the shared ``STONEFORGE_RUNNER_TOKEN`` (simple set-ups, the demo);
- for one job's heartbeat, transcripts and result only, that job's single-use Actions job token.

A job belongs to the runner that claimed it: heartbeats, transcripts and results name the job
in the URL and present its claim secret in ``CLAIM_SECRET_HEADER``. Another runner, or a wrong
or missing secret, gets 403; a job that is not the task's running job (stale, cancelled,
unknown) gets 409. Bodies are the models of ``bot.core.protocol``: a malformed one gets 400
(not JSON) or 422 naming the field; every refusal is ``{"message": ...}``.

Anyone holding a transcript's link may read it: its id is 32 random URL-safe characters.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import TypeAdapter

from bot import transcripts
from bot.adapters.github import GitHubError
from bot.core.protocol import (
    CLAIM_SECRET_HEADER,
    PROTOCOL_VERSION,
    RESULT,
    ClaimAnswer,
    ClaimRequest,
    Heartbeat,
    Prefetch,
    Registered,
    Registration,
    TranscriptUpload,
)
from bot.director.jobs import is_plan_job
from bot.dispatch import Dispatcher
from bot.job_claims import JobRefused
from bot.settings import BotSettings
from bot.signature import bearer_token, token_hash
from bot.store import RunnerRecord, Store
from bot.wire import parse_body, refuse

log = logging.getLogger(__name__)

_CLAIM: TypeAdapter[ClaimRequest] = TypeAdapter(ClaimRequest)
_REGISTRATION: TypeAdapter[Registration] = TypeAdapter(Registration)
_HEARTBEAT: TypeAdapter[Heartbeat] = TypeAdapter(Heartbeat)
_UPLOAD: TypeAdapter[TranscriptUpload] = TypeAdapter(TranscriptUpload)

REGISTRATION_TTL_S = 24 * 3600


def new_registration_token(store: Store, *, ttl_s: float = REGISTRATION_TTL_S) -> str:
    """A one-time registration token a maintainer hands to a new runner's operator."""
    token = "sfreg_" + secrets.token_urlsafe(24)
    store.create_registration_token(token_hash(token), now=time.time(), ttl_s=ttl_s)
    return token


@dataclass(frozen=True)
class Caller:
    """Who called: ``name`` (empty for the shared token), a registered runner's stored
    ``labels``, and ``owner``, the identity a claimed job is kept under."""

    name: str
    labels: tuple[str, ...] | None
    owner: str


SHARED_OWNER = "shared"  # every runner presenting STONEFORGE_RUNNER_TOKEN
ACTIONS_OWNER = "actions"  # a GitHub Actions run, with its job's single-use token


def runner_router(settings: BotSettings) -> APIRouter:
    router = APIRouter(prefix="/runner")

    async def caller(
        request: Request, authorization: str | None, job_id: str | None = None
    ) -> Caller:
        """The caller, or 401."""
        token = bearer_token(authorization)
        if token is None:
            raise HTTPException(status_code=401, detail="missing runner token")
        if settings.runner_token and hmac.compare_digest(token, settings.runner_token):
            return Caller("", None, SHARED_OWNER)
        store: Store = request.app.state.bot.store
        record: RunnerRecord | None = await asyncio.to_thread(
            store.runner_by_token, token_hash(token)
        )
        if record is not None:
            await asyncio.to_thread(store.touch_runner, record.runner_id, time.time())
            return Caller(record.name, record.labels, f"runner:{record.runner_id}")
        actions = getattr(request.app.state, "actions_backend", None)
        if job_id is not None and actions is not None and actions.authorizes(job_id, token):
            return Caller(ACTIONS_OWNER, None, ACTIONS_OWNER)
        raise HTTPException(status_code=401, detail="unknown runner token")

    @router.post("/register", status_code=201)
    async def register(request: Request) -> Response:
        body = parse_body(await request.body(), _REGISTRATION)
        if isinstance(body, JSONResponse):
            return body
        if body.protocol > PROTOCOL_VERSION:
            return refuse(
                422,
                f"this runner speaks protocol {body.protocol}; this bot knows up to "
                f"{PROTOCOL_VERSION}: upgrade the bot",
            )
        store: Store = request.app.state.bot.store
        if not await asyncio.to_thread(
            functools.partial(
                store.redeem_registration_token,
                token_hash(body.registration_token),
                now=time.time(),
            )
        ):
            return refuse(401, "unknown, used or expired registration token")
        runner_token = "sfrun_" + secrets.token_urlsafe(32)
        runner_id = uuid.uuid4().hex
        await asyncio.to_thread(
            functools.partial(
                store.add_runner,
                runner_id,
                name=body.name or runner_id,
                labels=list(body.labels),
                capacity=body.capacity,
                token_hash=token_hash(runner_token),
                now=time.time(),
            )
        )
        answer = Registered(runner_id=runner_id, runner_token=runner_token)
        return JSONResponse(answer.model_dump(), 201)

    @router.post("/claim")
    async def claim(request: Request, authorization: str | None = Header(default=None)) -> Response:
        who = await caller(request, authorization)
        body = parse_body(await request.body(), _CLAIM)
        if isinstance(body, Response):
            return body
        # A registered runner's labels are the ones it registered with (a runner cannot claim
        # work meant for others by sending more); the shared-token runner states its own.
        labels = who.labels if who.labels is not None else body.labels
        dispatcher: Dispatcher = request.app.state.dispatcher
        try:
            found = await dispatcher.claim(
                who.name or body.runner,
                body.worker,
                body.wait_s,
                frozenset(body.unavailable_agents),
                labels=frozenset(labels),
                prefetch=body.prefetch,
                owner=who.owner,
            )
        except GitHubError as exc:  # GitHub refused a read the job needs; the task was given back
            log.warning("claim_unavailable: %s", exc)
            wait = str(max(1, math.ceil(exc.retry_after or 1)))
            return Response(status_code=503, headers={"Retry-After": wait})
        if found is None:
            return Response(status_code=204)
        if isinstance(found, Prefetch):
            answer = ClaimAnswer(prefetch=found)
        else:
            answer = ClaimAnswer(job=found)
        return JSONResponse(answer.model_dump(mode="json", by_alias=True))

    @router.post("/jobs/{job_id:path}/heartbeat")
    async def heartbeat(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        who = await caller(request, authorization, job_id)
        body = parse_body(await request.body() or b"{}", _HEARTBEAT)
        if isinstance(body, Response):
            return body
        dispatcher: Dispatcher = request.app.state.dispatcher
        reports = request.app.state.director if is_plan_job(job_id) else dispatcher.reports
        try:
            await reports.heartbeat(job_id, who.owner, request.headers.get(CLAIM_SECRET_HEADER))
        except JobRefused as refused:
            return refuse(refused.status, refused.message)
        return JSONResponse({"ok": True})

    @router.post("/jobs/{job_id:path}/transcripts", status_code=201)
    async def transcript(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        who = await caller(request, authorization, job_id)
        raw = await _limited_body(request, transcripts.MAX_UPLOAD_BYTES)
        if raw is None:
            return refuse(413, "transcript too large")
        upload = parse_body(raw, _UPLOAD)
        if isinstance(upload, Response):
            return upload
        dispatcher: Dispatcher = request.app.state.dispatcher
        secret = request.headers.get(CLAIM_SECRET_HEADER)
        try:
            if is_plan_job(job_id):  # kept under the epic, the plan job's dispatch as attempt
                task = await request.app.state.director.transcript_task(job_id, who.owner, secret)
            else:
                task = await dispatcher.reports.owned(job_id, who.owner, secret)
        except JobRefused as refused:
            return refuse(refused.status, refused.message)
        store: Store = request.app.state.bot.store
        runner = task.worker or who.name or None
        tid = await asyncio.to_thread(
            functools.partial(transcripts.add, store, task, runner, upload, time.time())
        )
        if not is_plan_job(job_id):
            request.app.state.bot.transcript_added(task)
        link = transcripts.url(settings.public_url, tid)
        return JSONResponse({"id": tid, "url": link}, status_code=201)

    @router.post("/jobs/{job_id:path}/result")
    async def result(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        who = await caller(request, authorization, job_id)
        body = parse_body(await request.body(), RESULT)
        if isinstance(body, Response):
            return body
        dispatcher: Dispatcher = request.app.state.dispatcher
        secret = request.headers.get(CLAIM_SECRET_HEADER)
        reports = request.app.state.director if is_plan_job(job_id) else dispatcher.reports
        try:
            await reports.job_result(job_id, who.owner, secret, body)
        except JobRefused as refused:
            return refuse(refused.status, refused.message)
        if who.owner == ACTIONS_OWNER:
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
