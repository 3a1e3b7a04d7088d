"""A running world for bot tests: fakehub, the bot (in-process uvicorn), a test-driven runner."""

from __future__ import annotations

import base64
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization

from bot.app import create_app
from bot.core.protocol import CLAIM_SECRET_HEADER, ClaimAnswer
from bot.handlers import HANDLED_EVENTS
from bot.settings import BotSettings
from fakehub.server import FakeHub

SECRET = "pipeline-secret"
RUNNER_TOKEN = "runner-token"
CI = [sys.executable, "-c", "import os, sys; sys.exit(1 if os.path.exists('RED') else 0)"]


@dataclass
class World:
    hub: FakeHub
    bot_url: str
    lead_token: str
    tmp: Path
    installation_id: int = 0

    def get(self, path: str) -> Any:
        with self.api() as api:
            resp = api.get(path)
            resp.raise_for_status()
            return resp.json()

    def labels(self, number: int) -> set[str]:
        return {lbl["name"] for lbl in self.get(f"/repos/octo/app/issues/{number}")["labels"]}

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every webhook fakehub has queued was delivered and the bot processed it
        (its deliveries table has none left unprocessed)."""
        assert self.hub.sender.wait_idle(timeout), "fakehub's webhooks were not all sent"

        def processed() -> bool:
            with sqlite3.connect(self.tmp / "bot.db", timeout=5) as db:
                (left,) = db.execute(
                    "SELECT count(*) FROM deliveries WHERE processed_at IS NULL"
                ).fetchone()
            return left == 0

        wait_until(processed, timeout, "the bot to process its deliveries")

    def comments(self, number: int) -> list[str]:
        return [c["body"] for c in self.get(f"/repos/octo/app/issues/{number}/comments")]

    def push_main(self, files: dict[str, str], message: str = "maintainer change") -> None:
        """Commit files to main over git as the maintainer (an admin)."""
        checkout = self.tmp / f"main-{time.monotonic_ns()}"
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": "Authorization: Basic "
            + base64.b64encode(f"lead:{self.lead_token}".encode()).decode(),
        }

        def git(*args: str, cwd: Path | None = None) -> None:
            subprocess.run(
                ["git", "-c", "user.name=lead", "-c", "user.email=lead@example.com", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )

        git("clone", "-q", f"{self.hub.url}/octo/app.git", str(checkout))
        for path, text in files.items():
            target = checkout / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git("add", "-A", cwd=checkout)
        git("commit", "-qm", message, cwd=checkout)
        git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=checkout)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.hub.api_url,
            headers={"Authorization": f"token {self.lead_token}"},
            timeout=10,
        )

    def file(self, title: str, body: str = "") -> dict[str, Any]:
        with self.api() as api:
            resp = api.post("/repos/octo/app/issues", json={"title": title, "body": body})
            resp.raise_for_status()
            return dict(resp.json())

    def label(self, number: int) -> None:
        with self.api() as api:
            api.post(f"/repos/octo/app/issues/{number}/labels", json={"labels": ["agent-ready"]})

    def claim(self, wait_s: float = 0.0) -> dict[str, Any] | None:
        resp = httpx.post(
            f"{self.bot_url}/runner/claim",
            json={"runner": "test", "worker": "w0", "wait_s": wait_s},
            headers={"Authorization": f"Bearer {RUNNER_TOKEN}"},
            timeout=wait_s + 10,
        )
        if resp.status_code == 204:
            return None
        resp.raise_for_status()
        answer = ClaimAnswer.model_validate_json(resp.content)
        assert answer.job is not None, resp.text
        return answer.job.model_dump(mode="json", by_alias=True)

    @staticmethod
    def headers(job: dict[str, Any]) -> dict[str, str]:
        """What a runner presents for ``job``: its token and the job's claim secret."""
        return {"Authorization": f"Bearer {RUNNER_TOKEN}", CLAIM_SECRET_HEADER: job["claim_secret"]}

    def work(
        self, job: dict[str, Any], files: dict[str, str], *, from_branch: bool = False
    ) -> None:
        """Do what a runner does: clone, commit on the task branch, push, report.

        ``from_branch``: continue the pushed branch (a later attempt) instead of the base.
        """
        checkout = self.tmp / f"job-{job['issue']}-{job['attempt']}-{time.monotonic_ns()}"
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": "Authorization: Basic "
            + base64.b64encode(f"x-access-token:{job['token']}".encode()).decode(),
        }

        def git(*args: str, cwd: Path | None = None) -> str:
            out = subprocess.run(
                ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            return out.stdout.strip()

        git("clone", "-q", job["clone_url"], str(checkout))
        start = [f"origin/{job['branch']}"] if from_branch else []
        git("checkout", "-q", "-b", job["branch"], *start, cwd=checkout)
        for path, text in files.items():
            (checkout / path).write_text(text)
        git("add", "-A", cwd=checkout)
        git("commit", "-qm", job["title"], cwd=checkout)
        git("push", "-q", "origin", f"HEAD:refs/heads/{job['branch']}", cwd=checkout)
        sha = git("rev-parse", "HEAD", cwd=checkout)
        job_path = quote(job["job_id"], safe="")
        resp = httpx.post(
            f"{self.bot_url}/runner/jobs/{job_path}/result",
            json={
                "outcome": "completed",
                "reason": "success",
                "head_sha": sha,
                "branch": job["branch"],
                "agent_seconds": 0.1,
                "summary": "done",
            },
            headers=self.headers(job),
            timeout=10,
        )
        assert resp.status_code == 200, resp.text

    def report(self, job: dict[str, Any], result: dict[str, Any]) -> httpx.Response:
        """Post a runner result for ``job`` as it is, without doing any git work."""
        return httpx.post(
            f"{self.bot_url}/runner/jobs/{quote(job['job_id'], safe='')}/result",
            json={"branch": job["branch"], "agent_seconds": 1.0, **result},
            headers=self.headers(job),
            timeout=10,
        )

    def tasks(self) -> dict[int, dict[str, Any]]:
        return {t["issue"]: t for t in httpx.get(f"{self.bot_url}/api/tasks", timeout=5).json()}


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def bot_env() -> dict[str, Any]:
    """Extra BotSettings for the ``world`` fixture; override in a test module."""
    return {}


@pytest.fixture
def world(tmp_path: Path, bot_env: dict[str, Any]) -> Iterator[World]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    bot_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    hub = FakeHub(tmp_path / "hub")
    hub.start()
    lead = hub.create_user("lead")
    hub.create_user("octo", type="Organization")
    app = hub.create_app(
        slug="stoneforge",
        webhook_url=f"{bot_url}/webhooks/github",
        webhook_secret=SECRET,
        events=sorted(HANDLED_EVENTS),  # what app.yml subscribes to
        permissions={
            "issues": "write",
            "pull_requests": "write",
            "contents": "write",
            "checks": "write",
            "statuses": "read",
            "administration": "read",
        },
    )
    hub.create_repo("octo", "app", {"README.md": "hello\n"}, ci_command=CI, required_checks=["ci"])
    hub.set_permission("octo/app", "lead", "admin")
    inst = hub.install_app(app.id, "octo", ["app"])
    pem = app.private_key_pem
    serialization.load_pem_private_key(pem.encode(), password=None)  # the App key is real
    settings = BotSettings(
        app_id=app.id,
        private_key=pem,
        webhook_secret=SECRET,
        github_api_url=hub.api_url,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        runner_token=RUNNER_TOKEN,
        default_agent="script",
        steward_interval_s=0.5,
        **bot_env,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "bot start")
    try:
        yield World(hub, bot_url, lead.token, tmp_path, inst)
    finally:
        server.should_exit = True
        thread.join(10)
        hub.stop()
        sock.close()
