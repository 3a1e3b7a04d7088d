from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import pytest

from fakehub.gitstore import GitStore
from runner.git import GitError, RepoMirror
from runner.job import exclude_scratch
from runner.workspace import Prepared, WorkspaceError, Workspaces
from tests.runner.test_git import REPO, TOKEN, git_out
from tests.runner.test_git import argv_log as argv_log  # fixtures reused as they are
from tests.runner.test_git import clone_url as clone_url
from tests.runner.test_git import store as store

AUTHOR = {"author_name": "Bot", "author_email": "bot@example.com"}


@pytest.fixture
def ws(tmp_path: Path) -> Workspaces:
    return Workspaces(tmp_path / "ws", pool_size=2)


@pytest.fixture
def pusher(tmp_path: Path, clone_url: str) -> RepoMirror:
    """A second, independent runner cache used to move branches on the remote."""
    return RepoMirror(tmp_path / "pusher", REPO, clone_url)


def push_commit(
    pusher: RepoMirror, tmp_path: Path, branch: str, files: dict[str, str | bytes]
) -> str:
    """Commit ``files`` on top of origin/<branch> (or main) and push it to ``branch``."""
    pusher.fetch(TOKEN)
    wt = pusher.add_worktree(tmp_path / "push-wt", branch, from_remote_branch=True)
    for name, content in files.items():
        (wt / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (wt / name).write_bytes(content)
        else:
            (wt / name).write_text(content)
    sha = pusher.commit_all(wt, f"update {branch}", **AUTHOR)
    assert sha is not None
    pusher.push(wt, branch, TOKEN)
    pusher.remove_worktree(wt)
    return sha


def prepare(ws: Workspaces, clone_url: str, branch: str, **kwargs: object) -> Prepared:
    return ws.prepare(repo=REPO, clone_url=clone_url, token=TOKEN, branch=branch, **kwargs)  # type: ignore[arg-type]


def mirror_path(ws: Workspaces) -> Path:
    return ws.root / "mirrors" / "octo" / "demo.git"


def local_branches(ws: Workspaces) -> list[str]:
    out = git_out(mirror_path(ws), "for-each-ref", "--format=%(refname:short)", "refs/heads/")
    return out.split()


def listed_worktrees(ws: Workspaces) -> str:
    return git_out(mirror_path(ws), "worktree", "list", "--porcelain")


def test_warm_worktree_is_reset_clean_to_new_branch_and_base(
    ws: Workspaces, clone_url: str, store: GitStore, pusher: RepoMirror, tmp_path: Path
) -> None:
    first = prepare(ws, clone_url, "stoneforge/1-a")
    assert not first.reused
    assert first.base_sha == store.ref_sha(REPO, "main")
    assert git_out(first.path, "branch", "--show-current") == "stoneforge/1-a"
    # task 1 leaves every kind of mess behind
    (first.path / "README.md").write_text("changed by task 1\n")
    (first.path / "app" / "x.py").unlink()
    (first.path / "untracked.txt").write_text("junk\n")
    (first.path / "build" / "deep").mkdir(parents=True)
    (first.path / "build" / "deep" / "out.o").write_text("obj\n")
    (first.path / "staged.txt").write_text("staged\n")
    git_out(first.path, "add", "staged.txt")
    ws.release(first.path)
    assert "stoneforge/1-a" not in local_branches(ws)
    # main moves on, with a .gitignore that hides build/ (ignored files must go too)
    new_main = push_commit(pusher, tmp_path, "main", {".gitignore": "build/\n", "new.txt": "n\n"})
    (first.path / "build").mkdir()
    (first.path / "build" / "ignored.o").write_text("obj\n")

    second = prepare(ws, clone_url, "stoneforge/2-b")
    assert second.reused
    assert second.path == first.path
    assert second.base_sha == new_main
    assert git_out(second.path, "branch", "--show-current") == "stoneforge/2-b"
    assert git_out(second.path, "rev-parse", "HEAD") == new_main
    assert git_out(second.path, "status", "--porcelain", "--ignored") == ""
    assert (second.path / "README.md").read_text() == "hi\n"
    assert (second.path / "app" / "x.py").read_text() == "x = 1\n"
    assert (second.path / "new.txt").read_text() == "n\n"
    for gone in ("untracked.txt", "staged.txt", "build"):
        assert not (second.path / gone).exists(), gone


def test_concurrent_prepares_get_distinct_worktrees(
    ws: Workspaces, clone_url: str, store: GitStore
) -> None:
    warm = prepare(ws, clone_url, "stoneforge/0-warm")
    ws.release(warm.path)
    results: dict[int, Prepared] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = prepare(ws, clone_url, f"stoneforge/{n}-task")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    paths = {p.path for p in results.values()}
    assert len(paths) == 4
    assert sum(p.reused for p in results.values()) == 1  # only one warm worktree was free
    for n, p in results.items():
        assert git_out(p.path, "branch", "--show-current") == f"stoneforge/{n}-task"
        assert git_out(p.path, "status", "--porcelain") == ""
    # a branch that a busy worktree holds cannot be handed out a second time
    with pytest.raises(WorkspaceError, match="in use"):
        prepare(ws, clone_url, "stoneforge/1-task")
    for p in results.values():
        ws.release(p.path)
    # the pool keeps at most pool_size idle worktrees; the rest are removed
    assert sum(1 for p in paths if p.exists()) == 2
    assert listed_worktrees(ws).count("worktree ") == 3  # the bare mirror + 2 idle


def test_continue_from_branch_picks_up_pushed_work(
    ws: Workspaces, clone_url: str, store: GitStore
) -> None:
    branch = "stoneforge/7-resume"
    first = prepare(ws, clone_url, branch)
    (first.path / "progress.txt").write_text("half done\n")
    mirror = RepoMirror(ws.root, REPO, clone_url)
    pushed = mirror.commit_all(first.path, "wip", **AUTHOR)
    assert pushed is not None
    mirror.push(first.path, branch, TOKEN)
    ws.release(first.path)

    again = prepare(ws, clone_url, branch, continue_from_branch=True)
    assert again.reused
    assert again.base_sha == pushed
    assert (again.path / "progress.txt").read_text() == "half done\n"
    ws.release(again.path)
    # starting over ignores the pushed branch
    fresh = prepare(ws, clone_url, branch)
    assert fresh.base_sha == store.ref_sha(REPO, "main")
    assert not (fresh.path / "progress.txt").exists()
    ws.release(fresh.path)
    # continuing a branch that was never pushed starts from the base
    other = prepare(ws, clone_url, "stoneforge/8-new", continue_from_branch=True)
    assert other.base_sha == store.ref_sha(REPO, "main")


def test_setup_command_success_and_failure(ws: Workspaces, clone_url: str) -> None:
    ok = prepare(ws, clone_url, "stoneforge/1-s", setup_command="echo hello; touch made.txt")
    assert ok.setup is not None
    assert (ok.setup.ok, ok.setup.exit_code, ok.setup.timed_out) == (True, 0, False)
    assert "hello" in ok.setup.output_tail
    assert (ok.path / "made.txt").exists()  # it ran in the worktree
    ws.release(ok.path)
    bad = prepare(
        ws,
        clone_url,
        "stoneforge/2-s",
        setup_command="i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; "
        "echo boom >&2; exit 3",
    )
    assert bad.setup is not None
    assert (bad.setup.ok, bad.setup.exit_code, bad.setup.timed_out) == (False, 3, False)
    assert bad.setup.output_tail.rstrip().endswith("boom")
    assert "line2999" in bad.setup.output_tail
    # the head and the tail are kept, the middle dropped with a marker (runner.process)
    assert bad.setup.output_tail.startswith("line0\nline1\n")
    assert "line1500\n" not in bad.setup.output_tail
    assert "bytes of output dropped ...]" in bad.setup.output_tail
    assert not (bad.path / "made.txt").exists()  # the warm worktree was cleaned first
    assert prepare(ws, clone_url, "stoneforge/3-s").setup is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_setup_timeout_kills_the_process_group(ws: Workspaces, clone_url: str) -> None:
    started = time.monotonic()
    p = prepare(
        ws,
        clone_url,
        "stoneforge/1-t",
        setup_command="echo starting; sleep 60 & echo $! > sleeper.pid; wait",
        setup_timeout_s=0.5,
    )
    assert time.monotonic() - started < 10
    assert p.setup is not None
    assert (p.setup.ok, p.setup.exit_code, p.setup.timed_out) == (False, None, True)
    assert "starting" in p.setup.output_tail
    assert "timed out" in p.setup.output_tail
    sleeper = int((p.path / "sleeper.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper)


def test_setup_env_never_carries_the_token(ws: Workspaces, clone_url: str) -> None:
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    env = {
        "PATH": os.environ["PATH"],
        "SETUP_MARK": "visible",
        "LEAKY": f"prefix-{TOKEN}",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }
    p = prepare(ws, clone_url, "stoneforge/1-e", setup_command="env > env.txt", env=env)
    assert p.setup is not None
    assert p.setup.ok
    seen = (p.path / "env.txt").read_text()
    assert "SETUP_MARK=visible" in seen
    assert TOKEN not in seen
    assert basic not in seen
    # without an env, only the basics pass (never the runner's own environment)
    os.environ["STONEFORGE_TEST_SECRET"] = TOKEN
    try:
        q = prepare(ws, clone_url, "stoneforge/2-e", setup_command="env > env.txt")
    finally:
        del os.environ["STONEFORGE_TEST_SECRET"]
    seen = (q.path / "env.txt").read_text()
    assert TOKEN not in seen
    assert "PATH=" in seen


def test_release_without_keep_and_remove_branch_worktrees(
    ws: Workspaces, clone_url: str, tmp_path: Path
) -> None:
    a = prepare(ws, clone_url, "stoneforge/1-r")
    ws.release(a.path, keep_warm=False)
    assert not a.path.exists()
    assert str(a.path) not in listed_worktrees(ws)
    assert "stoneforge/1-r" not in local_branches(ws)
    ws.release(a.path)  # a second release is a harmless no-op

    # a busy worktree is never taken from its task; its release deletes the branch
    b = prepare(ws, clone_url, "stoneforge/2-r")
    ws.remove_branch_worktrees(REPO, "stoneforge/2-r")
    assert (b.path / "README.md").exists()
    assert "stoneforge/2-r" in local_branches(ws)
    ws.release(b.path)
    assert "stoneforge/2-r" not in local_branches(ws)
    assert "branch refs/heads/stoneforge/2-r" not in listed_worktrees(ws)

    # a worktree (and branch) left by something outside the pool, e.g. an older runner
    mirror = RepoMirror(ws.root, REPO, clone_url)
    stray = mirror.add_worktree(tmp_path / "stray", "stoneforge/3-r")
    other = Workspaces(ws.root)  # a fresh process knows nothing of it
    other.remove_branch_worktrees(REPO, "stoneforge/3-r")
    assert not stray.exists()
    assert str(stray) not in listed_worktrees(ws)
    assert "stoneforge/3-r" not in local_branches(ws)
    other.remove_branch_worktrees("octo/unknown", "x")  # no mirror: nothing to do


def test_new_process_adopts_leftover_worktrees(ws: Workspaces, clone_url: str) -> None:
    p = prepare(ws, clone_url, "stoneforge/1-crash")
    (p.path / "junk.txt").write_text("junk\n")  # the runner died before releasing
    restarted = Workspaces(ws.root, pool_size=2)
    q = restarted.prepare(repo=REPO, clone_url=clone_url, token=TOKEN, branch="stoneforge/2-next")
    assert q.reused
    assert q.path == p.path
    assert not (q.path / "junk.txt").exists()
    assert git_out(q.path, "branch", "--show-current") == "stoneforge/2-next"
    assert "stoneforge/1-crash" not in local_branches(ws)  # the dead task's branch is gone


def test_failed_fetch_keeps_the_warm_worktree_and_hides_the_token(
    ws: Workspaces, clone_url: str
) -> None:
    warm = prepare(ws, clone_url, "stoneforge/1-f")
    ws.release(warm.path)
    bad = "ghs_wrongTokenValue999"
    with pytest.raises(GitError) as info:
        ws.prepare(repo=REPO, clone_url=clone_url, token=bad, branch="stoneforge/2-f")
    assert bad not in str(info.value)
    again = prepare(ws, clone_url, "stoneforge/2-f")
    assert again.reused
    assert again.path == warm.path


def test_leftovers_without_a_mirror_are_discarded(tmp_path: Path, clone_url: str) -> None:
    ws = Workspaces(tmp_path / "ws")
    stale = ws.root / "workspaces" / "octo" / "demo" / "w1"
    stale.mkdir(parents=True)
    (stale / "junk.txt").write_text("junk\n")
    p = prepare(ws, clone_url, "stoneforge/1-fresh")
    assert not p.reused
    assert p.path == stale
    assert not (p.path / "junk.txt").exists()
    assert (p.path / "README.md").read_text() == "hi\n"


def test_enforce_budget_evicts_lru_idle_and_never_busy(
    tmp_path: Path, clone_url: str, pusher: RepoMirror
) -> None:
    # ~1.5 MiB of incompressible data, so each worktree weighs a measurable amount
    push_commit(pusher, tmp_path, "main", {"blob.bin": os.urandom(3 * 2**19)})
    ws = Workspaces(tmp_path / "ws", pool_size=4)
    busy = prepare(ws, clone_url, "stoneforge/1-busy")
    older = prepare(ws, clone_url, "stoneforge/2-old")
    newer = prepare(ws, clone_url, "stoneforge/3-new")
    ws.release(older.path)
    ws.release(newer.path)
    assert ws.enforce_budget() == []  # no budget, nothing to do

    usage = ws.usage_mb()
    assert usage > 4 * 1.5  # mirror + 3 worktrees
    ws.disk_budget_mb = int(usage - 1)  # one worktree must go
    assert ws.enforce_budget() == [older.path]
    assert not older.path.exists()
    assert newer.path.exists()
    assert busy.path.exists()
    assert ws.usage_mb() <= ws.disk_budget_mb

    ws.disk_budget_mb = 0
    assert ws.enforce_budget() == [newer.path]  # the busy one and its mirror stay
    assert busy.path.exists()
    assert mirror_path(ws).exists()
    assert (busy.path / "blob.bin").stat().st_size == 3 * 2**19

    ws.release(busy.path, keep_warm=False)
    assert ws.enforce_budget() == [mirror_path(ws)]  # now the idle mirror goes too
    assert ws.usage_mb() < 0.5
    # and the next task simply fetches it again
    again = prepare(ws, clone_url, "stoneforge/4-again")
    assert (again.path / "blob.bin").exists()


def test_a_current_mirror_skips_the_fetch_and_a_stale_one_does_not(
    ws: Workspaces,
    clone_url: str,
    pusher: RepoMirror,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = prepare(ws, clone_url, "stoneforge/1-a")
    ws.release(first.path)
    fetches: list[str] = []
    original = RepoMirror.fetch

    def counting(
        self: RepoMirror, token: str, *, branch: str | None = None, want: str | None = None
    ) -> None:
        fetches.append(token)
        original(self, token, branch=branch, want=want)

    monkeypatch.setattr(RepoMirror, "fetch", counting)
    second = prepare(ws, clone_url, "stoneforge/2-b", base_sha=first.base_sha)
    assert fetches == [], "the mirror already had the base the bot named"
    assert second.base_sha == first.base_sha
    ws.release(second.path)

    new_main = push_commit(pusher, tmp_path, "main", {"later.txt": "x\n"})
    fetches.clear()  # the pusher's own fetch does not count
    third = prepare(ws, clone_url, "stoneforge/3-c", base_sha=new_main)
    assert len(fetches) == 1, "a base the mirror lacks is fetched"
    assert third.base_sha == new_main
    assert (third.path / "later.txt").exists()


def test_the_scratch_folder_is_excluded_where_git_looks(
    ws: Workspaces, clone_url: str, tmp_path: Path, argv_log: Path
) -> None:
    """`.stoneforge/` goes into the repository's shared info/exclude (found from the worktree's
    files, as git finds it, without a git process), so git ignores it in every worktree."""
    prepared = prepare(ws, clone_url, "stoneforge/1-x")
    wt = prepared.path
    answer = Path(git_out(wt, "rev-parse", "--git-path", "info/exclude"))
    argv_log.write_text("")
    exclude_scratch(wt)
    assert "rev-parse" not in argv_log.read_text()
    assert (answer if answer.is_absolute() else wt / answer).read_text().endswith("/.stoneforge/\n")
    exclude_scratch(wt)  # once only
    assert (mirror_path(ws) / "info" / "exclude").read_text().count("/.stoneforge/") == 1
    (wt / ".stoneforge").mkdir()
    (wt / ".stoneforge" / "HANDOFF.md").write_text("note\n")
    assert git_out(wt, "status", "--porcelain", "--untracked-files=all") == ""

    plain = tmp_path / "plain"  # not a worktree: .git is a folder, git is asked
    git_out(tmp_path, "init", "-q", str(plain))
    exclude_scratch(plain)
    assert (plain / ".git" / "info" / "exclude").read_text().endswith("/.stoneforge/\n")
