"""The runner daemon end to end, against a tiny in-test bot and a local bare repository."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from runner.loop import Runner

TOKEN = "runner-secret-token"
INSTALLATION_TOKEN = "ghs_installation_decoy"
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


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("init", "--quiet", "--initial-branch=main", str(seed), cwd=tmp_path)
    (seed / "app").mkdir()
    (seed / "app" / "auth.py").write_text("SECRET = 'old'\n")
    (seed / "README.md").write_text("# demo\n")
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "initial", cwd=seed)
    git("push", "--quiet", str(bare), "main", cwd=seed)
    return bare


class Bot:
    """The bot's side of the runner protocol, with switches for the failure cases."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.heartbeats: list[str] = []
        self.claims: list[str] = []
        self.reject_claims = 0  # answer 401 to this many claims first
        self.fail_results = 0  # answer 503 to this many result posts first
        self.cancel: set[str] = set()  # job ids whose heartbeat answers 410
        self.app = FastAPI()
        self.app.post("/runner/claim")(self.claim)
        self.app.post("/runner/jobs/{job_id:path}/heartbeat")(self.heartbeat)
        self.app.post("/runner/jobs/{job_id:path}/result")(self.result)

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    async def claim(self, request: Request) -> Response:
        body = await request.json()
        if self.reject_claims > 0 or not self.authorized(request):
            self.reject_claims -= 1
            return Response(status_code=401)
        self.claims.append(body["worker"])
        for _ in range(10):
            if self.jobs:
                return Response(json.dumps(self.jobs.pop(0)), media_type="application/json")
            await asyncio.sleep(0.02)
        return Response(status_code=204)

    async def heartbeat(self, job_id: str, request: Request) -> Response:
        assert self.authorized(request)
        self.heartbeats.append(job_id)
        return Response(status_code=410 if job_id in self.cancel else 200)

    async def result(self, job_id: str, request: Request) -> Response:
        assert self.authorized(request)
        if self.fail_results > 0:
            self.fail_results -= 1
            return Response(status_code=503)
        self.results[job_id] = await request.json()
        return Response(status_code=200)


@pytest.fixture
async def bot() -> AsyncIterator[tuple[Bot, str]]:
    bot = Bot()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(bot.app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    yield bot, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


def job(origin: Path, issue: int, script: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "job_id": f"octo/demo#{issue}@1",
        "repo": "octo/demo",
        "issue": issue,
        "title": f"Task number {issue}",
        "body": "",
        "attempt": 1,
        "branch": f"stoneforge/{issue}-task",
        "base": "main",
        "clone_url": origin.as_uri(),
        "token": INSTALLATION_TOKEN,
        "agent": {"name": "script", "model": None},
        "prompt": f"Do it.\n\n```stoneforge-script\n{json.dumps(script)}\n```\n",
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


async def test_two_jobs_run_concurrently_and_push(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake, url = bot
    fake.reject_claims = 2
    users = {"path": "app/users.py", "write": "USERS = []\n"}
    auth = {"path": "app/auth.py", "replace": ["'old'", "'new'"]}
    fake.jobs = [
        job(origin, 1, {"sleep": 1.0, "edits": [users], "summary": "Added users"}),
        job(origin, 2, {"sleep": 1.0, "edits": [auth], "summary": "auth"}),
    ]
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append({**event, "at": time.monotonic()})

    runner = Runner(url, TOKEN, workers=2, work_dir=tmp_path / "work", on_event=on_event,
                    heartbeat_s=0.2, claim_wait_s=1, retry_base_s=0.05)  # fmt: skip
    await run_until(runner, fake, 2)

    r1, r2 = fake.results["octo/demo#1@1"], fake.results["octo/demo#2@1"]
    for result, issue in ((r1, 1), (r2, 2)):
        assert result["outcome"] == "completed", result
        assert result["reason"] == "success"
        assert result["branch"] == f"stoneforge/{issue}-task"
        assert result["agent_seconds"] >= 1.0
        assert result["head_sha"] == git("rev-parse", result["branch"], cwd=origin).strip()
        message = git("log", "-1", "--format=%an <%ae>%n%B", result["branch"], cwd=origin)
        assert message.startswith("stoneforge[bot] <stoneforge[bot]@users.noreply.github.com>\n")
        assert f"Task number {issue}\n\nStoneforge-Task: octo/demo#{issue}" in message
    assert r1["summary"] == "Added users"
    assert git("show", "stoneforge/1-task:app/users.py", cwd=origin) == "USERS = []\n"
    assert git("show", "stoneforge/2-task:app/auth.py", cwd=origin) == "SECRET = 'new'\n"
    assert "app/users.py" not in git("ls-tree", "-r", "--name-only", "main", cwd=origin)

    started = {e["job_id"]: e for e in events if e["type"] == "job_started"}
    finished = {e["job_id"]: e for e in events if e["type"] == "agent_finished"}
    assert {e["worker"] for e in started.values()} == {"runner-1/w0", "runner-1/w1"}
    worktrees = {e["worktree"] for e in started.values()}
    assert len(worktrees) == 2
    assert max(e["at"] for e in started.values()) < min(e["at"] for e in finished.values())
    assert not any(os.path.exists(w) for w in worktrees)  # noqa: ASYNC240
    assert {e["type"] for e in events} >= {"job_started", "agent_finished", "pushed"}
    assert "octo/demo#1@1" in fake.heartbeats

    assert "401" in caplog.text  # logged, retried, and the jobs still ran
    assert TOKEN not in caplog.text
    assert INSTALLATION_TOKEN not in caplog.text


async def test_failures_are_reported(bot: tuple[Bot, str], origin: Path, tmp_path: Path) -> None:
    fake, url = bot
    fake.fail_results = 1  # the first result post gets a 503 and must be retried
    fake.jobs = [
        job(origin, 3, {"edits": [{"path": "app/auth.py", "replace": ["absent", "x"]}]}),
        job(origin, 4, {"edits": [], "summary": "nothing to do"}),
        job(origin, 5, {"edits": []}, agent={"name": "no-such-agent"}),
        job(origin, 6, {"edits": []}, clone_url=(tmp_path / "missing.git").as_uri()),
    ]
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=2, work_dir=tmp_path / "work", on_event=events.append,
                    claim_wait_s=1, retry_base_s=0.05)  # fmt: skip
    await run_until(runner, fake, 4)

    reasons = {job_id: r["reason"] for job_id, r in fake.results.items()}
    assert reasons == {
        "octo/demo#3@1": "script_error",
        "octo/demo#4@1": "no_changes",
        "octo/demo#5@1": "unknown_agent",
        "octo/demo#6@1": "git_error",
    }
    assert all(r["outcome"] == "failed" for r in fake.results.values())
    assert "not found" in fake.results["octo/demo#3@1"]["detail"]
    assert fake.results["octo/demo#4@1"]["detail"] == "agent made no changes"
    assert INSTALLATION_TOKEN not in json.dumps(fake.results)
    assert sorted(e["job_id"] for e in events if e["type"] == "job_failed") == sorted(reasons)
    assert not list((tmp_path / "work" / "worktrees").iterdir())


async def test_cancelled_job_stops_agent(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    fake.jobs = [job(origin, 7, {"sleep": 60, "edits": []})]
    fake.cancel.add("octo/demo#7@1")
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", heartbeat_s=0.2,
                    claim_wait_s=1)  # fmt: skip
    started = time.monotonic()
    await run_until(runner, fake, 1)
    assert fake.results["octo/demo#7@1"]["reason"] == "cancelled"
    assert time.monotonic() - started < 20


async def test_retry_continues_from_pushed_branch_unless_restart(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    first = job(origin, 8, {"edits": [{"path": "a.txt", "write": "one\n"}]})
    fake.jobs = [first]
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    append = {"edits": [{"path": "a.txt", "append": "two\n"}]}
    again = job(origin, 8, append, job_id="octo/demo#8@2", attempt=2)
    fresh = job(origin, 9, append, job_id="octo/demo#9@2", attempt=2, restart=True,
                branch="stoneforge/8-task")  # fmt: skip
    fake.jobs = [again]
    await run_until(runner, fake, 2)
    assert git("show", "stoneforge/8-task:a.txt", cwd=origin) == "one\ntwo\n"
    fake.jobs = [fresh]
    await run_until(runner, fake, 3)
    assert fake.results["octo/demo#9@2"]["outcome"] == "completed"
    assert git("show", "stoneforge/8-task:a.txt", cwd=origin) == "two\n"
