"""The demo's pipeline: fakehub in this process, the bot and a runner as separate processes.

They run exactly as they would against GitHub: they reach fakehub only through its REST API,
webhooks and git over HTTP. :class:`Pipeline` creates the sample repository and files the sprint
as issues the way a maintainer would; ``demo.run`` shows it working, and the end-to-end tests and
``bench/dispatch.py`` drive it too.

This module imports neither ``bot`` nor ``runner``: it starts them as
``python -m stoneforge ...``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.sample import CI_COMMAND, FULL, OWNER, REPO, SAMPLE_REPO, SPRINT, SprintIssue
from fakehub.delivery import Faults
from fakehub.server import FakeHub

MAINTAINER = "octo-lead"
STONEFORGE = (sys.executable, "-m", "stoneforge")  # the command line, as its own process
APP_EVENTS = [
    "issues",
    "issue_dependencies",
    "sub_issues",
    "issue_comment",  # comment commands: /stoneforge plan, approve, ...
    "pull_request",
    "pull_request_review",
    "check_run",
    "check_suite",
    "status",
    "push",
    "merge_group",  # GitHub's merge queue, where a base requires it
]
APP_PERMISSIONS = {
    "issues": "write",
    "pull_requests": "write",
    "contents": "write",
    "checks": "write",
    "statuses": "read",
    "metadata": "read",
    "administration": "read",
    "merge_queues": "read",  # receives merge_group where a base requires GitHub's merge queue
    "actions": "write",  # dispatches the agent workflow when a repository uses `backend: actions`
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pipeline:
    """The running demo: fakehub in-process, bot and runner as child processes."""

    work: Path
    workers: int
    agent: str
    hub: FakeHub = field(init=False)
    bot_url: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)
    maintainer_token: str = ""
    # Optional resilience switches (tests/test_resilience.py); the defaults are the plain demo.
    webhook_faults: Faults | None = None  # fakehub's webhook faults (drop, duplicate, reorder)
    database_url: str | None = None  # shared by every bot; default: SQLite in ``work``
    bots: int = 1  # bot replicas; webhooks go to the first, each bot gets its own runner
    extra_env: dict[str, str] | None = None  # extra STONEFORGE_* settings for the bot(s)
    bot_urls: list[str] = field(default_factory=list)
    # Robustness switches (tests/test_runner_kill.py, tests/test_demo_agents.py, bench/).
    # Extra variables for the runner process(es); `stoneforge demo` puts the agent's own
    # credentials and executable override here (stoneforge.agent_env), the only ones it passes.
    runner_env: dict[str, str] | None = None
    sprint: tuple[SprintIssue, ...] = SPRINT  # the issues file_sprint() files, blockers first
    runner_session: bool = False  # start runners in their own session (killpg-able)
    repo_files: dict[str, str] | None = None  # added to (or replacing) the sample repository's
    ci: bool = True  # False: no CI runs, so pull requests wait for "ci" forever (benchmarks)
    ci_command: list[str] | None = None  # replaces the sample's test command (benchmarks)
    strict: bool = True  # main requires pull requests to be up to date (False: benchmarks)
    ci_workers: int = 2  # fakehub's CI runs at once (bench/merge.py tests candidates together)
    proc_names: list[str] = field(default_factory=list)  # log name of each of `procs`
    _runner_argv: list[str] = field(default_factory=list, init=False, repr=False)
    _runner_env: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _bot_argv: list[str] = field(default_factory=list, init=False, repr=False)
    _bot_env: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def start(self) -> None:
        self.hub = FakeHub(
            self.work / "fakehub", faults=self.webhook_faults, ci_workers=self.ci_workers
        )
        self.hub.start()
        secret = secrets.token_hex(16)
        bot_ports = [free_port() for _ in range(max(1, self.bots))]
        self.bot_urls = [f"http://127.0.0.1:{port}" for port in bot_ports]
        bot_port = bot_ports[0]
        self.bot_url = self.bot_urls[0]
        lead = self.hub.create_user(MAINTAINER)
        self.maintainer_token = lead.token
        self.hub.create_user(OWNER, type="Organization")
        app = self.hub.create_app(
            slug="stoneforge",
            webhook_url=f"{self.bot_url}/webhooks/github",
            webhook_secret=secret,
            events=APP_EVENTS,
            permissions=APP_PERMISSIONS,
        )
        self.hub.create_repo(
            OWNER,
            REPO,
            {**SAMPLE_REPO, **(self.repo_files or {})},
            ci_command=list(self.ci_command or CI_COMMAND) if self.ci else None,
            required_checks=["ci"],
            strict=self.strict,
        )
        self.hub.set_permission(FULL, MAINTAINER, "admin")
        self.hub.install_app(app.id, OWNER, [REPO])
        key = self.work / "app-key.pem"
        key.write_text(app.private_key_pem)
        key.chmod(0o600)
        runner_token = secrets.token_urlsafe(24)
        env = {
            **_clean_env(),
            "STONEFORGE_APP_ID": str(app.id),
            "STONEFORGE_PRIVATE_KEY": str(key),
            "STONEFORGE_WEBHOOK_SECRET": secret,
            "STONEFORGE_GITHUB_API_URL": self.hub.api_url,
            "STONEFORGE_DATABASE_URL": self.database_url or f"sqlite:///{self.work / 'bot.db'}",
            "STONEFORGE_RUNNER_TOKEN": runner_token,
            "STONEFORGE_DEFAULT_AGENT": self.agent,
            "STONEFORGE_STEWARD_INTERVAL_S": "1",
            **(self.extra_env or {}),
        }
        self._bot_argv = [*STONEFORGE, "bot", "--port", str(bot_port), "--log-level", "info"]
        self._bot_env = env
        self._spawn("bot", self._bot_argv, env)
        _wait_http(f"{self.bot_url}/healthz", timeout=30)
        runner_env = {
            **_clean_env(),
            "STONEFORGE_RUNNER_TOKEN": runner_token,
            **(self.runner_env or {}),
        }
        self._runner_env = runner_env
        self._runner_argv = [
            *STONEFORGE,
            "runner",
            "--bot-url",
            self.bot_url,
            "--workers",
            str(self.workers),
            "--work-dir",
            str(self.work / "runner"),
            "--log-level",
            "info",
        ]
        self._spawn("runner", self._runner_argv, runner_env, new_session=self.runner_session)
        for index, port in enumerate(bot_ports[1:], start=2):  # more replicas, one at a time
            url = self.bot_urls[index - 1]
            argv = [*STONEFORGE, "bot", "--port", str(port), "--log-level", "info"]
            self._spawn(f"bot-{index}", argv, env)
            _wait_http(f"{url}/healthz", timeout=30)
            self._spawn(
                f"runner-{index}",
                [
                    *(*STONEFORGE, "runner", "--bot-url", url),
                    *("--workers", str(self.workers), "--name", f"runner-{index}"),
                    *("--work-dir", str(self.work / f"runner-{index}"), "--log-level", "info"),
                ],
                runner_env,
                new_session=self.runner_session,
            )

    @property
    def runner_proc(self) -> subprocess.Popen[bytes]:
        """The (first bot's) runner process: the one `restart_runner` replaces."""
        return self.procs[1]

    def restart_runner(self, log_name: str = "runner-restarted") -> subprocess.Popen[bytes]:
        """Start a fresh first runner (same name, work dir and token) in place of the old one.

        The old process must be gone already (the caller killed it); its log is kept, the new
        one writes ``{log_name}.log``.
        """
        argv, env = self._runner_argv, self._runner_env
        return self._respawn(1, log_name, argv, env, new_session=self.runner_session)

    def restart_bot(self, log_name: str = "bot-restarted") -> subprocess.Popen[bytes]:
        """Start a fresh first bot (same port, settings and database) in place of the old one,
        which must be gone already; its log is kept, the new one writes ``{log_name}.log``."""
        return self._respawn(0, log_name, self._bot_argv, self._bot_env)

    def _respawn(
        self, index: int, log_name: str, argv: list[str], env: dict[str, str], **kw: bool
    ) -> subprocess.Popen[bytes]:
        if self.procs[index].poll() is None:
            raise RuntimeError(f"the {self.proc_names[index]} is still running; kill it first")
        self._spawn(log_name, argv, env, **kw)
        self.procs[index] = self.procs.pop()
        self.proc_names[index] = self.proc_names.pop()
        return self.procs[index]

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], *, new_session: bool = False
    ) -> None:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs.append(
            subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=new_session,
            )
        )
        self.proc_names.append(name)

    def file_sprint(self) -> None:
        """File the sprint as a maintainer would: issues, native dependencies, then the label."""
        with self.api() as api:
            for item in self.sprint:
                resp = api.post(
                    f"/repos/{FULL}/issues",
                    json={"title": item.title, "body": item.render_body(self.numbers)},
                )
                resp.raise_for_status()
                self.numbers[item.key] = resp.json()["number"]
            ids = {}
            for item in self.sprint:
                ids[item.key] = api.get(f"/repos/{FULL}/issues/{self.numbers[item.key]}").json()[
                    "id"
                ]
            for item in self.sprint:
                for blocker in item.blocked_by_native:
                    resp = api.post(
                        f"/repos/{FULL}/issues/{self.numbers[item.key]}/dependencies/blocked_by",
                        json={"issue_id": ids[blocker]},
                    )
                    resp.raise_for_status()
            for item in self.sprint:
                resp = api.post(
                    f"/repos/{FULL}/issues/{self.numbers[item.key]}/labels",
                    json={"labels": list(item.labels)},
                )
                resp.raise_for_status()

    def file_issue(self, title: str, body: str, labels: tuple[str, ...] = ()) -> int:
        """File one issue as the maintainer; its number."""
        with self.api() as api:
            resp = api.post(
                f"/repos/{FULL}/issues", json={"title": title, "body": body, "labels": list(labels)}
            )
            resp.raise_for_status()
            return int(resp.json()["number"])

    def comment(self, number: int, body: str) -> int:
        """Comment on an issue as the maintainer (a command, say); the comment's id."""
        with self.api() as api:
            resp = api.post(f"/repos/{FULL}/issues/{number}/comments", json={"body": body})
            resp.raise_for_status()
            return int(resp.json()["id"])

    def issue(self, number: int) -> dict[str, Any]:
        with self.api() as api:
            resp = api.get(f"/repos/{FULL}/issues/{number}")
            resp.raise_for_status()
            return dict(resp.json())

    def comments(self, number: int) -> list[dict[str, Any]]:
        with self.api() as api:
            resp = api.get(f"/repos/{FULL}/issues/{number}/comments", params={"per_page": 100})
            resp.raise_for_status()
            return list(resp.json())

    def sub_issues(self, number: int) -> list[dict[str, Any]]:
        with self.api() as api:
            resp = api.get(f"/repos/{FULL}/issues/{number}/sub_issues", params={"per_page": 100})
            resp.raise_for_status()
            return list(resp.json())

    @contextlib.contextmanager
    def api(self) -> Iterator[httpx.Client]:
        headers = {
            "Authorization": f"token {self.maintainer_token}",
            "Accept": "application/vnd.github+json",
        }
        with httpx.Client(base_url=self.hub.api_url, headers=headers, timeout=30) as client:
            yield client

    def tasks(self) -> list[dict[str, Any]]:
        try:
            resp = httpx.get(f"{self.bot_url}/api/tasks", timeout=5)
            return list(resp.json()) if resp.status_code == 200 else []
        except httpx.HTTPError:
            return []

    def crashed(self) -> str | None:
        for proc, name in zip(self.procs, self.proc_names, strict=False):
            if proc.poll() is not None:
                log = self.work / f"{name}.log"
                return f"the {name} exited with code {proc.returncode} (see {log})"
        return None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(Exception):
            self.hub.stop()

    def git_log(self) -> str:
        out = subprocess.run(
            ["git", "--git-dir", str(self.hub.git.path(FULL)), "log", "--oneline", "main"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout


def _clean_env() -> dict[str, str]:
    """The children get a plain environment: no credentials of the person running the demo
    (the runner gets its agent's own in ``runner_env``)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
