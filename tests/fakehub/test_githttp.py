from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from fakehub.githttp import basic_credentials, create_git_app
from fakehub.gitstore import ZERO_SHA, GitStore, Identity, git_env

REPO = "octo/demo"
TOKEN = "ghs_writer"
READER = "ghs_reader"


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def auth_env(token: str | None) -> dict[str, str]:
    extra = {}
    if token is not None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        extra = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    return git_env(extra)


def git(cwd: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = auth_env(token)
    env.update(
        GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com",
    )  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60
    )


def authorize(full_name: str, user: str | None, password: str | None, write: bool) -> bool:
    if password == TOKEN:
        return True
    return password == READER and not write


class Pushes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str, str]], str | None]] = []
        self.event = threading.Event()

    def __call__(self, full_name: str, updates: list[tuple[str, str, str]], pw: str | None) -> None:
        self.calls.append((full_name, updates, pw))
        self.event.set()


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "repos")
    s.create_repo(REPO, {"README.md": "hi\n"}, author=Identity("A", "a@example.com"))
    return s


@pytest.fixture
def pushes() -> Pushes:
    return Pushes()


@pytest.fixture
def server(store: GitStore, pushes: Pushes) -> Iterator[str]:
    app = create_git_app(store, authorize, pushes)
    with serve_app(app) as url:
        yield url
    app.state.git_http.notifier.shutdown(wait=True)


def test_clone_and_push_new_branch(store: GitStore, pushes: Pushes, server: str, tmp_path: Path):
    work = tmp_path / "work"
    cloned = git(tmp_path, "clone", f"{server}/{REPO}.git", str(work), token=TOKEN)
    assert cloned.returncode == 0, cloned.stderr
    assert (work / "README.md").read_text() == "hi\n"
    (work / "new.txt").write_text("new\n")
    git(work, "add", "new.txt")
    assert git(work, "commit", "-m", "add").returncode == 0
    sha = git(work, "rev-parse", "HEAD").stdout.strip()
    pushed = git(work, "push", "origin", "HEAD:refs/heads/feature", token=TOKEN)
    assert pushed.returncode == 0, pushed.stderr
    assert store.ref_sha(REPO, "feature") == sha
    assert pushes.event.wait(5)
    assert pushes.calls == [(REPO, [("refs/heads/feature", ZERO_SHA, sha)], TOKEN)]
    # fast-forward main and delete the branch in one push
    pushes.event.clear()
    main_before = store.ref_sha(REPO, "main")
    pushed = git(work, "push", "origin", "HEAD:main", ":feature", token=TOKEN)
    assert pushed.returncode == 0, pushed.stderr
    assert pushes.event.wait(5)
    assert pushes.calls[1][1] == [
        ("refs/heads/feature", sha, ZERO_SHA),
        ("refs/heads/main", main_before, sha),
    ]


def test_gzip_request_bodies_are_decompressed(
    store: GitStore, pushes: Pushes, tmp_path: Path
) -> None:
    git_app = create_git_app(store, authorize, pushes)
    encodings: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            encodings.append(headers.get(b"content-encoding", b"").decode())
        await git_app(scope, receive, send)

    with serve_app(recording) as url:
        work = tmp_path / "work"
        assert git(tmp_path, "clone", f"{url}/{REPO}.git", str(work), token=TOKEN).returncode == 0
        main = git(work, "rev-parse", "HEAD").stdout.strip()
        stream = "".join(
            f"commit refs/heads/b{i:03}\ncommitter T <t@example.com> 1700000000 +0000\n"
            f"data 4\nb{i:03}\nfrom {main}\n\n"
            for i in range(300)
        )
        imported = subprocess.run(
            ["git", "fast-import", "--quiet"], cwd=work, input=stream, text=True,
            env=git_env(), capture_output=True,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        pushed = git(work, "push", "origin", "--all", token=TOKEN)
        # 301 distinct wants make the clone's request big enough for git to gzip it
        cloned = git(tmp_path, "clone", f"{url}/{REPO}.git", str(tmp_path / "w2"), token=TOKEN)
    git_app.state.git_http.notifier.shutdown(wait=True)
    assert pushed.returncode == 0, pushed.stderr
    assert cloned.returncode == 0, cloned.stderr
    assert len(store.branches(REPO)) == 301
    remote_branches = git(tmp_path / "w2", "branch", "-r").stdout.split()
    assert "origin/b299" in remote_branches
    assert "gzip" in encodings


def test_wrong_password_cannot_clone(server: str, tmp_path: Path) -> None:
    result = git(tmp_path, "clone", f"{server}/{REPO}.git", str(tmp_path / "w"), token="bad")
    assert result.returncode != 0
    assert not (tmp_path / "w" / "README.md").exists()


def test_no_credentials_gets_401_challenge(server: str) -> None:
    import httpx

    response = httpx.get(f"{server}/{REPO}.git/info/refs?service=git-upload-pack")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="fakehub"'


def test_unknown_repo_is_404(server: str) -> None:
    import httpx

    response = httpx.get(
        f"{server}/octo/missing.git/info/refs?service=git-upload-pack", auth=("x", TOKEN)
    )
    assert response.status_code == 404


def test_read_only_token_can_clone_but_not_push(
    store: GitStore, pushes: Pushes, server: str, tmp_path: Path
) -> None:
    import httpx

    work = tmp_path / "work"
    assert git(tmp_path, "clone", f"{server}/{REPO}.git", str(work), token=READER).returncode == 0
    (work / "x.txt").write_text("x\n")
    git(work, "add", "x.txt")
    git(work, "commit", "-m", "x")
    result = git(work, "push", "origin", "HEAD:refs/heads/nope", token=READER)
    assert result.returncode != 0
    assert "403" in result.stderr
    assert store.ref_sha(REPO, "nope") is None
    assert pushes.calls == []
    denied = httpx.get(
        f"{server}/{REPO}.git/info/refs?service=git-receive-pack", auth=("x", READER)
    )
    assert denied.status_code == 403


def test_mounted_under_another_app(store: GitStore, pushes: Pushes, tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    git_app = create_git_app(store, authorize, pushes)
    outer = Starlette(
        routes=[
            Route("/api/v3/meta", lambda request: PlainTextResponse("api")),
            Mount("/", git_app),
        ]
    )
    with serve_app(outer) as url:
        result = git(tmp_path, "clone", f"{url}/{REPO}.git", str(tmp_path / "w"), token=TOKEN)
        import httpx

        assert httpx.get(f"{url}/api/v3/meta").text == "api"
    git_app.state.git_http.notifier.shutdown(wait=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "w" / "README.md").read_text() == "hi\n"


def test_basic_credentials_parsing() -> None:
    header = "Basic " + base64.b64encode(b"x-access-token:abc:def").decode()
    assert basic_credentials(header) == ("x-access-token", "abc:def")
    assert basic_credentials("Bearer abc") == (None, None)
    assert basic_credentials("Basic !!!") == (None, None)
    assert basic_credentials(None) == (None, None)
