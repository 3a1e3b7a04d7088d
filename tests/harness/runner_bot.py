"""The bot's side of the runner protocol, served for real (uvicorn on loopback), for tests that
run ``runner.loop.Runner`` end to end: its claim, heartbeat, transcript and result endpoints
validate every body with the protocol's models. ``bot_server()`` starts it; ``job()`` makes the
fields of a job, ``run_until()`` runs a runner until the bot holds that many results, and
``make_origin()`` a bare repository to clone.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from bot.core.protocol import (
    CLAIM_SECRET_HEADER,
    JOB,
    RESULT,
    ClaimAnswer,
    ClaimRequest,
    Heartbeat,
    Job,
    Prefetch,
    Refusal,
    TranscriptUpload,
)
from runner.loop import Runner

TOKEN = "runner-secret-token"
INSTALLATION_TOKEN = "ghs_installation_decoy"
CLAIM_SECRET = "claim-secret-of-the-test-jobs"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout


def remote_branch(origin: Path, branch: str) -> str:
    """The branch's sha on the origin, or "" when it was never pushed."""
    return git("for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}", cwd=origin).strip()


def make_origin(tmp_path: Path) -> Path:
    """A bare repository with one commit on main (app/auth.py, README.md, .gitignore)."""
    bare = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("init", "--quiet", "--initial-branch=main", str(seed), cwd=tmp_path)
    (seed / "app").mkdir()
    (seed / "app" / "auth.py").write_text("SECRET = 'old'\n")
    (seed / "README.md").write_text("# demo\n")
    (seed / ".gitignore").write_text("build/\n")
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", str(bare), "main", cwd=seed)
    return bare


class Bot:
    """The bot's side of the runner protocol (its models, strictly), with switches for the
    failure cases. ``jobs`` are job fields (the kind follows from ``review_feedback``) or
    ``{"prefetch": {...}}``; ``results`` and ``transcripts`` hold what arrived, validated."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.heartbeats: list[str] = []
        self.claims: list[str] = []
        self.claim_bodies: list[dict[str, Any]] = []
        self.reject_claims = 0  # answer 401 to this many claims first
        self.fail_results = 0  # answer 503 to this many result posts first
        self.refuse: dict[str, int] = {}  # job id -> what its heartbeat answers (403/409/410)
        self.handed_out: dict[str, Job] = {}
        self.transcripts: list[tuple[str, dict[str, Any]]] = []
        self.app = FastAPI()
        self.app.post("/runner/jobs/{job_id:path}/transcripts")(self.transcript)
        self.app.post("/runner/claim")(self.claim)
        self.app.post("/runner/jobs/{job_id:path}/heartbeat")(self.heartbeat)
        self.app.post("/runner/jobs/{job_id:path}/result")(self.result)

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    def owns(self, job_id: str, request: Request) -> bool:
        """The caller presents the claim secret of the job it names."""
        job = self.handed_out.get(job_id)
        return job is not None and request.headers.get(CLAIM_SECRET_HEADER) == job.claim_secret

    def answer(self, item: dict[str, Any]) -> ClaimAnswer:
        if "prefetch" in item:
            return ClaimAnswer(prefetch=Prefetch.model_validate(item["prefetch"]))
        fields = {"claim_secret": CLAIM_SECRET, **item}
        feedback = fields.pop("review_feedback", None)
        if feedback:
            fields.update(kind="revise", review_feedback=feedback)
        job = JOB.validate_python({"kind": "implement", **fields})
        self.handed_out[job.job_id] = job
        return ClaimAnswer(job=job)

    async def claim(self, request: Request) -> Response:
        body = ClaimRequest.model_validate_json(await request.body())
        if self.reject_claims > 0 or not self.authorized(request):
            self.reject_claims -= 1
            return Response(status_code=401)
        self.claims.append(body.worker)
        self.claim_bodies.append(body.model_dump(mode="json"))
        for _ in range(10):
            if self.jobs:
                answer = self.answer(self.jobs.pop(0))
                return Response(
                    answer.model_dump_json(by_alias=True), media_type="application/json"
                )
            await asyncio.sleep(0.02)
        return Response(status_code=204)

    async def heartbeat(self, job_id: str, request: Request) -> Response:
        assert self.authorized(request)
        assert self.owns(job_id, request)
        Heartbeat.model_validate_json(await request.body())
        self.heartbeats.append(job_id)
        if job_id in self.refuse:
            refusal = Refusal(message="not yours any more")
            return Response(refusal.model_dump_json(), status_code=self.refuse[job_id],
                            media_type="application/json")  # fmt: skip
        return Response(status_code=200)

    async def transcript(self, job_id: str, request: Request) -> Response:
        assert self.authorized(request)
        assert self.owns(job_id, request)
        upload = TranscriptUpload.model_validate_json(await request.body())
        self.transcripts.append((job_id, upload.model_dump(mode="json", by_alias=True)))
        body = {"id": str(len(self.transcripts)), "url": f"http://t/{len(self.transcripts)}"}
        return Response(json.dumps(body), status_code=201, media_type="application/json")

    async def result(self, job_id: str, request: Request) -> Response:
        assert self.authorized(request)
        assert self.owns(job_id, request)
        if self.fail_results > 0:
            self.fail_results -= 1
            return Response(status_code=503)
        result = RESULT.validate_json(await request.body())
        assert result.branch == self.handed_out[job_id].branch, "a result names its job's branch"
        self.results[job_id] = result.model_dump(mode="json", by_alias=True)
        return Response(status_code=200)


@asynccontextmanager
async def bot_server() -> AsyncIterator[tuple[Bot, str]]:
    bot = Bot()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(bot.app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield bot, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def job(origin: Path, issue: int, script: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A job for the script agent: the script rides in the issue body, as on GitHub."""
    body = f"Do it.\n\n```stoneforge-script\n{json.dumps(script)}\n```\n"
    return {
        "job_id": f"octo/demo#{issue}@1",
        "claim_secret": CLAIM_SECRET,
        "repo": "octo/demo",
        "issue": issue,
        "title": f"Task number {issue}",
        "body": body,
        "attempt": 1,
        "branch": f"stoneforge/{issue}-task",
        "base": "main",
        "clone_url": origin.as_uri(),
        "token": INSTALLATION_TOKEN,
        "agent": {"name": "script", "model": None},
        **extra,
    }


def plan_job(origin: Path, issue: int, plan: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """A plan job for the script agent: the plan rides in the epic's body (a ``stoneforge-plan``
    block), as in the demo; None leaves the block out."""
    block = f"```stoneforge-plan\n{json.dumps(plan)}\n```\n" if plan is not None else ""
    fields = job(origin, issue, {}, **extra)
    for key in ("branch", "attempt"):
        fields.pop(key)
    return {
        **fields,
        "kind": "plan",
        "job_id": f"octo/demo#{issue}@plan-p{issue}-1",
        "title": f"Epic number {issue}",
        "body": f"Break this down.\n\n{block}",
        "plan_id": f"p{issue}",
        **extra,
    }


async def run_until(runner: Runner, bot: Bot, count: int, limit_s: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    deadline = time.monotonic() + limit_s
    while len(bot.results) < count and time.monotonic() < deadline and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    # A claim cancelled by `stop` is still long-polling in the bot; let it end before the next
    # test step queues jobs, or it would hand one to the departed client.
    await asyncio.sleep(0.3)
