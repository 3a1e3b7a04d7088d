"""Fixtures for fakehub's API tests: a running FakeHub, a webhook receiver, an App installed on
an organization's repository, and helpers to push commits over real git smart HTTP."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from fakehub.records import App, Repo, User
from fakehub.server import FakeHub
from tests.fakehub.openapi import Spec, load_spec

SECRET = "It's a Secret to Everybody"
ORG = "octo"
REPO = "demo"
FULL = f"{ORG}/{REPO}"
EVENTS = [
    "issues",
    "issue_comment",
    "issue_dependencies",
    "sub_issues",
    "pull_request",
    "pull_request_review",
    "check_run",
    "check_suite",
    "status",
    "push",
]
PERMISSIONS = {
    "issues": "write",
    "pull_requests": "write",
    "contents": "write",
    "checks": "write",
    "statuses": "write",
    "administration": "read",
}


@dataclass
class Hook:
    event: str
    delivery: str
    signature: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    """A real HTTP server on 127.0.0.1 that records webhook deliveries."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                hook = Hook(
                    self.headers.get("x-github-event", ""),
                    self.headers.get("x-github-delivery", ""),
                    self.headers.get("x-hub-signature-256", ""),
                    body,
                )
                with receiver._cond:
                    receiver.hooks.append(hook)
                    receiver._cond.notify_all()
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, pred: Callable[[Hook], bool], timeout: float = 10.0) -> Hook:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for hook in self.hooks:
                    if pred(hook):
                        return hook
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no matching webhook arrived")
                self._cond.wait(remaining)

    def of(self, event: str, action: str | None = None) -> list[Hook]:
        with self._cond:
            return [
                h
                for h in self.hooks
                if h.event == event and (action is None or h.payload.get("action") == action)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class World:
    hub: FakeHub
    receiver: Receiver
    app: App
    maintainer: User
    repo: Repo
    installation_id: int
    tmp: Path
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.hub.api_url

    def app_jwt(self, *, app: App | None = None, iat_offset: int = -60, lifetime: int = 600) -> str:
        app = app or self.app
        now = int(time.time()) + iat_offset
        claims = {"iat": now, "exp": now + lifetime, "iss": str(app.id)}
        return jwt.encode(claims, app.private_key_pem, algorithm="RS256")

    def installation_token(self, **body: Any) -> str:
        r = httpx.post(
            f"{self.api}/app/installations/{self.installation_id}/access_tokens",
            headers={"Authorization": f"Bearer {self.app_jwt()}"},
            json=body or None,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def client(self, token: str | None = None) -> httpx.Client:
        token = token or self.bot_token
        return httpx.Client(
            base_url=self.api,
            headers={"Authorization": f"token {token}", "Accept": "application/vnd.github+json"},
            timeout=30,
        )

    @property
    def bot_token(self) -> str:
        if "bot" not in self._tokens:
            self._tokens["bot"] = self.installation_token()
        return self._tokens["bot"]

    def clone(self, name: str = "work") -> Path:
        dest = self.tmp / name
        url = f"{self.hub.url}/{FULL}.git"
        git(self.tmp, "clone", "-q", url, str(dest), token=self.bot_token)
        git(dest, "config", "user.name", "Agent")
        git(dest, "config", "user.email", "agent@example.com")
        return dest

    def push_branch(self, checkout: Path, branch: str, files: dict[str, str], msg: str) -> str:
        """Commit ``files`` on ``branch`` (created from the current HEAD) and push it."""
        git(checkout, "checkout", "-q", "-B", branch)
        for path, text in files.items():
            target = checkout / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(checkout, "add", "-A")
        git(checkout, "commit", "-q", "-m", msg)
        git(checkout, "push", "-q", "origin", f"HEAD:refs/heads/{branch}", token=self.bot_token)
        return git(checkout, "rev-parse", "HEAD").strip()

    def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.hub.events():
                if pred(event):
                    return event
            time.sleep(0.02)
        raise AssertionError("event did not happen")


def git(cwd: Path, *args: str, token: str | None = None) -> str:
    env = {"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(cwd)}
    cmd = ["git"]
    if token:
        import base64

        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        cmd += ["-c", f"http.extraHeader=Authorization: Basic {basic}"]
    proc = subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def spec() -> Spec:
    return load_spec()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    h = FakeHub(tmp_path / "fakehub")
    h.start()
    yield h
    h.stop()


def make_world(
    hub: FakeHub,
    receiver: Receiver,
    tmp: Path,
    *,
    ci_command: list[str] | None = None,
    required: list[str] | None = None,
    strict: bool = True,
) -> World:
    maintainer = hub.create_user("mona")
    hub.create_user(ORG, type="Organization")
    app = hub.create_app(
        slug="stoneforge",
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        events=EVENTS,
        permissions=PERMISSIONS,
    )
    repo = hub.create_repo(
        ORG,
        REPO,
        {"README.md": "# demo\n", "app/main.py": "print('hello')\n"},
        ci_command=ci_command,
        required_checks=required or [],
        strict=strict,
    )
    hub.set_permission(FULL, "mona", "admin")
    inst = hub.install_app(app.id, ORG, [REPO])
    return World(hub, receiver, app, maintainer, repo, inst, tmp)


@pytest.fixture
def world(hub: FakeHub, receiver: Receiver, tmp_path: Path) -> World:
    return make_world(hub, receiver, tmp_path)
