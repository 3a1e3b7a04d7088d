"""The one test world: fakehub with the App from ``app.yml`` on one repository, and its parts.

Build one with :func:`tests.harness.open_world` (or :func:`tests.harness.build_world` on a
fakehub a test already runs). The helpers every kind of test needs are here once: the
maintainer's REST calls and pushes, the App's JWT and installation tokens, waiting on fakehub's
event log, a runner the test drives, bots started as processes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import jwt

from bot.actions_backend import ActionsBackend
from bot.core.protocol import CLAIM_SECRET_HEADER, ClaimAnswer
from fakehub.records import App, Repo, User
from fakehub.server import FakeHub
from tests.harness.bot import RUNNER_TOKEN, InProcessBot, start_bot_process
from tests.harness.git import git, write_files
from tests.harness.receiver import Receiver
from tests.harness.waiting import Changes, hub_changes, wait_until

T = TypeVar("T")


@dataclass
class World:
    """fakehub, the App installed on ``repo``, its ``maintainer``, and the parts started."""

    hub: FakeHub
    tmp: Path
    app: App
    maintainer: User
    repo: Repo
    installation_id: int
    secret: str
    receiver: Receiver | None = None
    bot: InProcessBot | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict)

    # -- what the parts are -------------------------------------------------------------------

    @property
    def lead_token(self) -> str:
        return self.maintainer.token or ""

    @property
    def bot_url(self) -> str:
        assert self.bot is not None, "this world runs no bot in-process (open_world(bot=True))"
        return self.bot.url

    @property
    def backend(self) -> ActionsBackend:
        assert self.bot is not None, "this world runs no bot in-process"
        return self.bot.backend

    @property
    def changes(self) -> Changes:
        return hub_changes(self.hub)

    def close(self) -> None:
        """Stop the parts this world started (not fakehub: whoever started it stops it)."""
        if self.bot is not None:
            self.bot.stop()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- the maintainer, over the REST API ----------------------------------------------------

    def api(self, token: str | None = None) -> httpx.Client:
        """A REST client, as the maintainer unless ``token`` says otherwise."""
        return _client(self.hub.api_url, token or self.lead_token)

    def get(self, path: str) -> Any:
        with self.api() as api:
            resp = api.get(path)
            resp.raise_for_status()
            return resp.json()

    def file(self, title: str, body: str = "", token: str | None = None) -> dict[str, Any]:
        with self.api(token) as api:
            resp = api.post(
                f"/repos/{self.repo.full_name}/issues", json={"title": title, "body": body}
            )
            resp.raise_for_status()
            return dict(resp.json())

    def label(self, number: int, name: str = "agent-ready", token: str | None = None) -> None:
        with self.api(token) as api:
            api.post(
                f"/repos/{self.repo.full_name}/issues/{number}/labels", json={"labels": [name]}
            ).raise_for_status()

    def file_labeled(self, title: str, body: str = "") -> int:
        number = int(self.file(title, body)["number"])
        self.label(number)
        return number

    def unlabel(self, number: int, name: str = "agent-ready") -> None:
        with self.api() as api:
            path = f"/repos/{self.repo.full_name}/issues/{number}/labels/{name}"
            api.delete(path).raise_for_status()

    def block(self, number: int, blocker: dict[str, Any]) -> None:
        with self.api() as api:
            api.post(
                f"/repos/{self.repo.full_name}/issues/{number}/dependencies/blocked_by",
                json={"issue_id": blocker["id"]},
            ).raise_for_status()

    def edit(self, number: int, **fields: Any) -> None:
        with self.api() as api:
            api.patch(
                f"/repos/{self.repo.full_name}/issues/{number}", json=fields
            ).raise_for_status()

    def labels(self, number: int) -> set[str]:
        issue = self.get(f"/repos/{self.repo.full_name}/issues/{number}")
        return {lbl["name"] for lbl in issue["labels"]}

    def comment(self, number: int, body: str, token: str | None = None) -> dict[str, Any]:
        """Comment on an issue, as the maintainer unless ``token`` says otherwise (a command,
        say: it reaches the bot as a signed ``issue_comment`` webhook)."""
        with self.api(token) as api:
            resp = api.post(
                f"/repos/{self.repo.full_name}/issues/{number}/comments", json={"body": body}
            )
            resp.raise_for_status()
            return dict(resp.json())

    def comments(self, number: int) -> list[str]:
        return [
            c["body"] for c in self.get(f"/repos/{self.repo.full_name}/issues/{number}/comments")
        ]

    def push_main(self, files: dict[str, str], message: str = "maintainer change") -> None:
        """Commit files to main over git as the maintainer (an admin)."""
        checkout = self.tmp / f"main-{time.monotonic_ns()}"
        login, token = self.maintainer.login, self.lead_token
        git(self.tmp, "clone", "-q", self.clone_url, str(checkout), token=token, login=login)
        write_files(checkout, files)
        git(checkout, "add", "-A")
        git(checkout, "commit", "-qm", message)
        git(checkout, "push", "-q", "origin", "HEAD:refs/heads/main", token=token, login=login)

    # -- the App ------------------------------------------------------------------------------

    def app_jwt(self, *, app: App | None = None, iat_offset: int = -60, lifetime: int = 600) -> str:
        app = app or self.app
        now = int(time.time()) + iat_offset
        claims = {"iat": now, "exp": now + lifetime, "iss": str(app.id)}
        return jwt.encode(claims, app.private_key_pem, algorithm="RS256")

    def installation_token(self, **body: Any) -> str:
        r = httpx.post(
            f"{self.hub.api_url}/app/installations/{self.installation_id}/access_tokens",
            headers={"Authorization": f"Bearer {self.app_jwt()}"},
            json=body or None,
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    @property
    def bot_token(self) -> str:
        """An installation token of the App, made once per world."""
        if "bot" not in self._tokens:
            self._tokens["bot"] = self.installation_token()
        return self._tokens["bot"]

    def client(self, token: str | None = None) -> httpx.Client:
        """A REST client, as the App's installation unless ``token`` says otherwise."""
        return _client(self.hub.api_url, token or self.bot_token)

    @property
    def clone_url(self) -> str:
        return f"{self.hub.url}/{self.repo.full_name}.git"

    def clone(self, name: str = "work") -> Path:
        dest = self.tmp / name
        git(self.tmp, "clone", "-q", self.clone_url, str(dest), token=self.bot_token)
        git(dest, "config", "user.name", "Agent")
        git(dest, "config", "user.email", "agent@example.com")
        return dest

    def push_branch(self, checkout: Path, branch: str, files: dict[str, str], msg: str) -> str:
        """Commit ``files`` on ``branch`` (created from the current HEAD) and push it."""
        git(checkout, "checkout", "-q", "-B", branch)
        write_files(checkout, files)
        git(checkout, "add", "-A")
        git(checkout, "commit", "-q", "-m", msg)
        git(checkout, "push", "-q", "origin", f"HEAD:refs/heads/{branch}", token=self.bot_token)
        return git(checkout, "rev-parse", "HEAD").strip()

    # -- waiting on the world -----------------------------------------------------------------

    def wait_until(
        self, predicate: Callable[[], T | None], timeout: float = 30.0, what: str = ""
    ) -> T:
        """:func:`wait_until`, woken by fakehub's event log."""
        return wait_until(predicate, timeout, what, woken_by=self.changes)

    def wait_event(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """The first event in fakehub's log that ``pred`` accepts, once there is one."""
        return self.wait_until(
            lambda: next((e for e in self.hub.events() if pred(e)), None),
            timeout,
            "an event in fakehub's log",
        )

    def quiet(self, quiet_s: float = 3.0, timeout: float = 60.0) -> list[dict[str, Any]]:
        """fakehub's event log once nothing has been written to it for ``quiet_s`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.changes.count()
            self.changes.wait(seen, quiet_s)
            if self.changes.count() == seen:
                return self.hub.events()
        raise AssertionError(f"fakehub's event log did not stay quiet for {quiet_s:g} s")

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until fakehub sent every webhook it queued and the bot processed them all."""
        assert self.bot is not None, "settle() needs the in-process bot"
        assert self.hub.sender.wait_idle(timeout), "fakehub's webhooks were not all sent"
        wait_until(self.bot.processed_all, timeout, "the bot to process its deliveries")

    # -- the bot's view -----------------------------------------------------------------------

    def tasks(self, bot_url: str | None = None) -> dict[int, dict[str, Any]]:
        tasks = httpx.get(f"{bot_url or self.bot_url}/api/tasks", timeout=5).json()
        return {t["issue"]: t for t in tasks}

    # -- a runner the test drives -------------------------------------------------------------

    def claim(self, wait_s: float = 0.0) -> dict[str, Any] | None:
        """Claim a job as runner "test"; None when there is none."""
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
        token = job["token"]
        git(self.tmp, "clone", "-q", job["clone_url"], str(checkout), token=token)
        start = [f"origin/{job['branch']}"] if from_branch else []
        git(checkout, "checkout", "-q", "-b", job["branch"], *start)
        write_files(checkout, files)
        git(checkout, "add", "-A")
        git(checkout, "commit", "-qm", job["title"])
        git(checkout, "push", "-q", "origin", f"HEAD:refs/heads/{job['branch']}", token=token)
        sha = git(checkout, "rev-parse", "HEAD").strip()
        resp = self.report(
            job,
            {"outcome": "completed", "reason": "success", "head_sha": sha, "summary": "done"},
            agent_seconds=0.1,
        )
        assert resp.status_code == 200, resp.text

    def report(
        self, job: dict[str, Any], result: dict[str, Any], *, agent_seconds: float = 1.0
    ) -> httpx.Response:
        """Post a runner result for ``job`` as it is, without doing any git work."""
        return httpx.post(
            f"{self.bot_url}/runner/jobs/{quote(job['job_id'], safe='')}/result",
            json={"branch": job["branch"], "agent_seconds": agent_seconds, **result},
            headers=self.headers(job),
            timeout=10,
        )

    # -- bots as processes --------------------------------------------------------------------

    def start_bot(self, name: str) -> str:
        """A fresh bot process (own SQLite database) that reconciles only at start-up."""
        key = self.tmp / "app-key.pem"
        key.write_text(self.app.private_key_pem)
        proc, url = start_bot_process(
            self.tmp,
            name,
            {
                "APP_ID": str(self.app.id),
                "PRIVATE_KEY": str(key),
                "WEBHOOK_SECRET": self.secret,
                "GITHUB_API_URL": self.hub.api_url,
                "DATABASE_URL": f"sqlite:///{self.tmp / (name + '.db')}",
                "RUNNER_TOKEN": "unused",
                "DEFAULT_AGENT": "script",
                "RECONCILE_INTERVAL_S": "3600",
                "STEWARD_INTERVAL_S": "1",
            },
        )
        self.procs.append(proc)
        return url


def _client(base_url: str, token: str) -> httpx.Client:
    headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)
