from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import runner.git as runner_git
from fakehub.githttp import create_git_app
from fakehub.gitstore import GitStore, Identity, git_env
from runner.git import GitError, RepoMirror, _auth_env
from tests.fakehub.test_githttp import serve_app

REPO = "octo/demo"
TOKEN = "ghs_runnerSecretToken123"


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "repos")
    s.create_repo(REPO, {"README.md": "hi\n", "app/x.py": "x = 1\n"}, author=Identity("A", "a@x"))
    return s


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a `git` on PATH that logs its argv and runs the real git."""
    real = shutil.which("git")
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "argv.log"
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{os.environ['PATH']}")
    return log


@pytest.fixture
def clone_url(store: GitStore, argv_log: Path) -> Iterator[str]:
    def authorize(full_name: str, user: str | None, password: str | None, write: bool) -> bool:
        return full_name == REPO and user == "x-access-token" and password == TOKEN

    app = create_git_app(store, authorize, lambda *args: None)
    with serve_app(app) as url:
        yield f"{url}/{REPO}.git"
    app.state.git_http.notifier.shutdown(wait=True)


@pytest.fixture
def mirror(tmp_path: Path, clone_url: str) -> RepoMirror:
    m = RepoMirror(tmp_path / "cache", REPO, clone_url)
    m.fetch(TOKEN)
    return m


def git_out(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=True
    ).stdout.strip()


def test_fetch_creates_mirror_with_clean_remote(
    mirror: RepoMirror, store: GitStore, tmp_path: Path, clone_url: str
) -> None:
    assert mirror.path == tmp_path / "cache" / "mirrors" / "octo" / "demo.git"
    assert git_out(mirror.path, "rev-parse", "refs/remotes/origin/main") == store.ref_sha(
        REPO, "main"
    )
    assert git_out(mirror.path, "config", "remote.origin.url") == clone_url
    # a second fetch picks up new commits and prunes deleted branches
    store.set_branch(REPO, "extra", store.ref_sha(REPO, "main"))
    mirror.fetch(TOKEN)
    assert "origin/extra" in git_out(mirror.path, "branch", "-r")
    store.delete_branch(REPO, "extra")
    mirror.fetch(TOKEN)
    assert "origin/extra" not in git_out(mirror.path, "branch", "-r")


def test_parallel_worktrees_are_isolated(mirror: RepoMirror, tmp_path: Path) -> None:
    paths = {1: tmp_path / "wt" / "task-1", 2: tmp_path / "wt" / "task-2"}
    errors: list[BaseException] = []

    def add(n: int) -> None:
        try:
            mirror.add_worktree(paths[n], f"stoneforge/{n}-task")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    one, two = paths[1], paths[2]
    assert (one / "README.md").read_text() == "hi\n"
    (one / "only-in-one.txt").write_text("1\n")
    assert not (two / "only-in-one.txt").exists()
    assert git_out(one, "branch", "--show-current") == "stoneforge/1-task"
    assert git_out(two, "branch", "--show-current") == "stoneforge/2-task"
    sha = mirror.commit_all(one, "task 1", author_name="Bot", author_email="bot@example.com")
    assert sha is not None
    assert mirror.head_sha(one) == sha
    assert mirror.head_sha(two) != sha
    assert git_out(two, "status", "--porcelain") == ""


def test_commit_all_none_when_clean_and_push_arrives(
    mirror: RepoMirror, store: GitStore, tmp_path: Path
) -> None:
    wt = mirror.add_worktree(tmp_path / "wt", "stoneforge/5-x")
    assert mirror.commit_all(wt, "nothing", author_name="Bot", author_email="b@x") is None
    (wt / "app" / "x.py").write_text("x = 2\n")
    (wt / "README.md").unlink()
    (wt / "new.md").write_text("new\n")
    sha = mirror.commit_all(wt, "Do task 5\n\nbody", author_name="Bot", author_email="b@x")
    assert sha is not None
    mirror.push(wt, "stoneforge/5-x", TOKEN)
    assert store.ref_sha(REPO, "stoneforge/5-x") == sha
    info = store.commit_info(REPO, sha)
    assert (info.author_name, info.author_email, info.message) == (
        "Bot",
        "b@x",
        "Do task 5\n\nbody",
    )
    assert store.read_file(REPO, sha, "README.md") is None
    assert store.read_file(REPO, sha, "new.md") == b"new\n"
    assert store.read_file(REPO, sha, "app/x.py") == b"x = 2\n"


def test_restart_from_pushed_branch_and_force_push(
    mirror: RepoMirror, store: GitStore, tmp_path: Path
) -> None:
    wt = mirror.add_worktree(tmp_path / "wt", "stoneforge/7-y")
    (wt / "a.txt").write_text("a\n")
    first = mirror.commit_all(wt, "first", author_name="Bot", author_email="b@x")
    mirror.push(wt, "stoneforge/7-y", TOKEN)
    mirror.remove_worktree(wt)
    assert not wt.exists()
    mirror.fetch(TOKEN)
    # continue the earlier pushed work
    wt = mirror.add_worktree(tmp_path / "wt", "stoneforge/7-y", from_remote_branch=True)
    assert mirror.head_sha(wt) == first
    # start over from main, over a stale directory with junk in it
    (wt / "junk.txt").write_text("junk\n")
    wt = mirror.add_worktree(tmp_path / "wt", "stoneforge/7-y")
    assert mirror.head_sha(wt) == store.ref_sha(REPO, "main")
    assert not (wt / "junk.txt").exists()
    (wt / "b.txt").write_text("b\n")
    second = mirror.commit_all(wt, "second", author_name="Bot", author_email="b@x")
    with pytest.raises(GitError, match="push"):
        mirror.push(wt, "stoneforge/7-y", TOKEN)  # not a fast-forward
    mirror.push(wt, "stoneforge/7-y", TOKEN, force=True)
    assert store.ref_sha(REPO, "stoneforge/7-y") == second
    mirror.remove_worktree(wt)
    assert git_out(mirror.path, "worktree", "list").count("\n") == 0  # only the bare repo


def test_token_never_on_disk_in_url_or_argv(
    mirror: RepoMirror, tmp_path: Path, argv_log: Path
) -> None:
    wt = mirror.add_worktree(tmp_path / "wt", "stoneforge/9-z")
    (wt / "f.txt").write_text("f\n")
    mirror.commit_all(wt, "f", author_name="Bot", author_email="b@x")
    mirror.push(wt, "stoneforge/9-z", TOKEN)
    mirror.fetch(TOKEN)
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode())
    for root in (mirror.path, wt):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert TOKEN.encode() not in data, path
                assert encoded not in data, path
    remotes = git_out(wt, "remote", "-v")
    assert TOKEN not in remotes
    assert "@" not in remotes
    logged = argv_log.read_text()
    assert "push" in logged  # the shim saw the network commands
    assert "fetch" in logged
    assert TOKEN not in logged
    assert encoded.decode() not in logged


def test_the_token_reaches_git_only_as_a_header_for_the_repository_url() -> None:
    url = "https://github.example/octo/demo.git"
    env = runner_git.git_env(_auth_env(url, TOKEN))
    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    # The only place the token is: one header, configured for this repository's URL only
    # (a redirect to another host does not match it). Never a URL, argv or a helper's output.
    assert [k for k, v in env.items() if encoded in v or TOKEN in v] == ["GIT_CONFIG_VALUE_0"]
    assert env["GIT_CONFIG_KEY_0"] == f"http.{url}.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {encoded}"
    assert env["GIT_CONFIG_COUNT"] == "1"


def test_fetch_and_push_authenticate_on_the_first_request(tmp_path: Path, store: GitStore) -> None:
    """No anonymous try first: each fetch and push saves a 401 round trip."""
    requests_seen: list[tuple[str, int]] = []

    def authorize(full_name: str, user: str | None, password: str | None, write: bool) -> bool:
        return user == "x-access-token" and password == TOKEN

    app = create_git_app(store, authorize, lambda *args: None)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def sent(message: Any) -> None:
            if message["type"] == "http.response.start":
                requests_seen.append((scope["path"], message["status"]))
            await send(message)

        await app(scope, receive, sent)

    with serve_app(recording) as url:
        _fetch_and_push(tmp_path, f"{url}/{REPO}.git")
    app.state.git_http.notifier.shutdown(wait=True)
    assert len(requests_seen) >= 4, requests_seen  # the server saw both conversations
    assert [r for r in requests_seen if r[1] != 200] == []


def _fetch_and_push(tmp_path: Path, clone_url: str) -> None:
    m = RepoMirror(tmp_path / "cache", REPO, clone_url)
    m.fetch(TOKEN)
    wt = m.add_worktree(tmp_path / "wt", "stoneforge/3-x")
    (wt / "x.txt").write_text("x\n")
    m.commit_all(wt, "x", author_name="Bot", author_email="b@x")
    m.push(wt, "stoneforge/3-x", TOKEN)


def test_bad_token_fails_without_leaking_it(tmp_path: Path, clone_url: str) -> None:
    bad = "ghs_wrongTokenValue999"
    m = RepoMirror(tmp_path / "other-cache", REPO, clone_url)
    with pytest.raises(GitError) as info:
        m.fetch(bad)
    assert "fetch" in str(info.value)
    assert bad not in str(info.value)


def test_concurrent_fetches_share_one_mirror(tmp_path: Path, clone_url: str) -> None:
    mirrors = [RepoMirror(tmp_path / "cache", REPO, clone_url) for _ in range(4)]
    errors: list[BaseException] = []

    def fetch(m: RepoMirror) -> None:
        try:
            m.fetch(TOKEN)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(m,)) for m in mirrors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert git_out(mirrors[0].path, "branch", "-r").strip() == "origin/main"


class _GatedLock:
    """The mirror's lock, entered only once ``gate`` is set: holds a fetch between its asking
    and its turn, so another fetch can run in between."""

    def __init__(self, lock: Any, gate: threading.Event) -> None:
        self.lock, self.gate = lock, gate

    def __enter__(self) -> None:
        self.gate.wait(10)
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_a_fetch_from_another_url_does_not_stand_in_for_ours(
    tmp_path: Path, clone_url: str
) -> None:
    """Concurrent fetches of one mirror share work only when they fetch from the same URL: a
    job whose clone URL is wrong must fail, even if a good fetch just finished beside it."""
    good = RepoMirror(tmp_path / "cache", REPO, clone_url)
    bad = RepoMirror(tmp_path / "cache", REPO, (tmp_path / "missing.git").as_uri())
    gate = threading.Event()
    bad._lock = _GatedLock(bad._lock, gate)  # type: ignore[assignment]
    errors: list[BaseException] = []

    def fetch_bad() -> None:
        try:
            bad.fetch(TOKEN)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=fetch_bad)
    thread.start()  # asks, then waits at the gate
    good.fetch(TOKEN)  # begins after the bad one asked, and finishes
    gate.set()
    thread.join(10)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], GitError)
    assert "missing.git" in str(errors[0])


def test_rejects_credentials_in_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="credentials"):
        RepoMirror(tmp_path, REPO, "http://x-access-token:abc@127.0.0.1/octo/demo.git")


def test_ref_reads_match_git_for_loose_packed_missing_and_symbolic_refs(
    mirror: RepoMirror, argv_log: Path
) -> None:
    """Branch tips come from the ref files, without a git process; git answers the odd ones."""

    def rev_parse(ref: str) -> str:
        return git_out(mirror.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")

    def spawned(read: Callable[[], object]) -> tuple[object, list[str]]:
        argv_log.write_text("")
        value = read()
        return value, argv_log.read_text().splitlines()

    main = rev_parse("refs/remotes/origin/main")
    assert (mirror.path / "refs/remotes/origin/main").is_file()  # as a fetch leaves it: loose
    assert spawned(lambda: mirror.remote_sha("main")) == (main, [])
    git_out(mirror.path, "pack-refs", "--all")  # loose refs move into packed-refs
    assert not (mirror.path / "refs/remotes/origin/main").exists()
    assert spawned(lambda: mirror.remote_sha("main")) == (main, [])
    start = spawned(lambda: mirror.start_sha("stoneforge/1-x", "main", from_remote_branch=True))
    assert start == (main, [])
    assert spawned(lambda: mirror.remote_sha("no-such-branch")) == (None, [])
    git_out(mirror.path, "symbolic-ref", "refs/remotes/origin/alias", "refs/remotes/origin/main")
    alias, calls = spawned(lambda: mirror.remote_sha("alias"))
    assert alias == main
    assert len(calls) == 1, "a symbolic ref: git answers"
    assert mirror._ref_sha("refs/../../etc/passwd") is None


def test_maintenance_runs_after_a_fetch_at_most_once_a_minute(
    mirror: RepoMirror, argv_log: Path, store: GitStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def maintenances() -> int:
        return sum(line.startswith("maintenance") for line in argv_log.read_text().splitlines())

    argv_log.write_text("")
    mirror.maintain()  # the fixture's fetch happened
    assert maintenances() == 1
    mirror.maintain()  # no fetch since
    assert maintenances() == 1
    store.set_branch(REPO, "other", store.ref_sha(REPO, "main") or "")
    mirror.fetch(TOKEN)
    mirror.maintain()  # within the minute
    assert maintenances() == 1
    monkeypatch.setattr(runner_git, "MAINTAIN_EVERY_S", 0.0)
    mirror.maintain()
    assert maintenances() == 2
