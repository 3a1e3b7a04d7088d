"""Rebase jobs (``runner.rebase``) with real git against a bare origin: a clean rebase is pushed
with the lease, a conflict is aborted and its files reported, and a branch that is not the
App's alone, or moved, is never rewritten."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.core.protocol import AgentChoice, Commands, CompletedResult, FailedResult, RebaseJob
from runner.git import RepoMirror
from runner.job import AUTHOR_EMAIL, AUTHOR_NAME, Control
from runner.rebase import NOT_OURS, run_rebase
from tests.harness.runner_bot import make_origin

BRANCH = "stoneforge/5-readme"


def sh(cwd: Path, *args: str, author: tuple[str, str] = (AUTHOR_NAME, AUTHOR_EMAIL)) -> str:
    name, email = author
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    env |= {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
    env |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def commit(seed: Path, branch: str, path: str, text: str, **who: tuple[str, str]) -> str:
    sh(seed, "checkout", "--quiet", branch)
    (seed / path).write_text(text)
    sh(seed, "commit", "--quiet", "-am", f"edit {path}", **who)
    sh(seed, "push", "--quiet", "origin", branch)
    return sh(seed, "rev-parse", "HEAD")


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """A clone of an origin whose task branch (the App's) changes README.md."""
    origin = make_origin(tmp_path)
    clone = tmp_path / "clone"
    sh(tmp_path, "clone", "--quiet", str(origin), str(clone))
    sh(clone, "checkout", "--quiet", "-b", BRANCH)
    commit(clone, BRANCH, "README.md", "# demo, with a task's line\n")
    return clone


def job(origin: Path, expected: str, test: str | None = None) -> RebaseJob:
    return RebaseJob(
        job_id="octo/demo#5@3", claim_secret="s" * 16, repo="octo/demo", issue=5, title="t",
        clone_url=str(origin), token="tok", agent=AgentChoice(name="script"), branch=BRANCH,
        expected_head=expected, pull_number=12, commands=Commands(test=test),
    )  # fmt: skip


async def rebase(seed: Path, tmp_path: Path, expected: str, test: str | None = None) -> object:
    origin = Path(sh(seed, "remote", "get-url", "origin"))
    mirror = RepoMirror(tmp_path / "cache", "octo/demo", str(origin))
    return await run_rebase(job(origin, expected, test), mirror, tmp_path / "work", Control())


def remote(seed: Path, ref: str) -> str:
    return sh(seed, "ls-remote", "origin", ref).split()[0]


async def test_a_clean_rebase_is_tested_and_pushed_on_the_new_base(
    seed: Path, tmp_path: Path
) -> None:
    head = remote(seed, BRANCH)
    base = commit(seed, "main", "app/auth.py", "SECRET = 'new'\n", author=("Rita", "r@x"))
    result = await rebase(seed, tmp_path, head, test="grep -q new app/auth.py")
    assert isinstance(result, CompletedResult), result
    assert remote(seed, BRANCH) == result.head_sha != head
    sh(seed, "fetch", "--quiet", "origin")
    assert sh(seed, "rev-parse", f"{result.head_sha}~1") == base
    assert (
        sh(seed, "log", "-1", "--format=%an %cn", result.head_sha) == f"{AUTHOR_NAME} {AUTHOR_NAME}"
    )
    assert not list((tmp_path / "work" / "rebase").glob("*"))  # the worktree is gone


async def test_a_conflict_is_aborted_and_its_files_reported(seed: Path, tmp_path: Path) -> None:
    head = remote(seed, BRANCH)
    commit(seed, "main", "README.md", "# demo, the base's line\n", author=("Rita", "r@x"))
    result = await rebase(seed, tmp_path, head)
    assert isinstance(result, FailedResult)
    assert (result.reason.value, result.detail) == ("rebase_conflict", "README.md")
    assert remote(seed, BRANCH) == head  # nothing pushed


async def test_a_foreign_commit_or_a_moved_branch_is_never_rewritten(
    seed: Path, tmp_path: Path
) -> None:
    seen = remote(seed, BRANCH)
    commit(seed, "main", "app/auth.py", "SECRET = 'new'\n", author=("Rita", "r@x"))
    sams = commit(seed, BRANCH, ".gitignore", "build/\ndist/\n", author=("sam", "s@x"))
    moved = await rebase(seed, tmp_path, seen)
    assert isinstance(moved, FailedResult)
    assert moved.reason.value == "branch_moved"
    assert f"not {seen}" in (moved.detail or "")
    foreign = await rebase(seed, tmp_path, sams)
    assert isinstance(foreign, FailedResult)
    assert foreign.reason.value == "branch_moved"
    assert NOT_OURS in (foreign.detail or "")
    assert "by sam" in (foreign.detail or "")
    assert remote(seed, BRANCH) == sams


def test_the_lease_refuses_a_push_over_a_branch_that_moved(seed: Path, tmp_path: Path) -> None:
    origin = sh(seed, "remote", "get-url", "origin")
    mirror = RepoMirror(tmp_path / "cache", "octo/demo", origin)
    old = remote(seed, BRANCH)
    mirror.fetch("tok")
    worktree = mirror.add_detached_worktree(tmp_path / "wt", f"refs/remotes/origin/{BRANCH}")
    newer = commit(seed, BRANCH, ".gitignore", "build/\ndist/\n")
    assert mirror.push_with_lease(worktree, BRANCH, "tok", old) is False
    assert remote(seed, BRANCH) == newer
    assert mirror.push_with_lease(worktree, BRANCH, "tok", newer) is True
    assert remote(seed, BRANCH) == old
