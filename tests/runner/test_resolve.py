"""Resolve-conflicts jobs (``runner.resolve``) with real git, a real runner and the script agent:
the rebase stops at a real conflict, the agent rewrites the file, and the rebased head is
pushed with the lease; markers left behind are refused and nothing is pushed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.loop import Runner
from runner.resolve import markers_left
from tests.harness.runner_bot import TOKEN, Bot, job, run_until
from tests.runner.test_rebase import commit, remote, sh

BRANCH = "stoneforge/5-task"
JOB_ID = "octo/demo#5@4"


def conflicted(origin: Path, tmp_path: Path) -> tuple[Path, str]:
    """A clone whose task branch (the App's) and main (someone else's) rewrite the same line of
    README.md, and the two commits on main that touched it, one of them not README.md's."""
    clone = tmp_path / "clone"
    sh(tmp_path, "clone", "--quiet", str(origin), str(clone))
    sh(clone, "checkout", "--quiet", "-b", BRANCH)
    head = commit(clone, BRANCH, "README.md", "# demo, with the task's line\n")
    commit(clone, "main", "app/auth.py", "SECRET = 'new'\n", author=("Rita", "r@x"))
    commit(clone, "main", "README.md", "# demo, with the base's line\n", author=("Rita", "r@x"))
    return clone, head


def resolve_job(origin: Path, head: str, content: str, test: str | None = None) -> dict[str, Any]:
    script = {"edits": [{"path": "README.md", "write": content}], "summary": "resolved"}
    return job(
        origin, 5, script, kind="resolve_conflicts", job_id=JOB_ID, branch=BRANCH,
        expected_head=head, pull_number=12, conflicts=["README.md"], round=1,
        commands={"test": test},
    )  # fmt: skip


def make_runner(url: str, tmp_path: Path) -> Runner:
    return Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", heartbeat_s=0.2,
                  claim_wait_s=1, retry_base_s=0.05)  # fmt: skip


async def test_the_agent_resolves_a_real_conflict_and_the_rebased_head_is_pushed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    clone, head = conflicted(origin, tmp_path)
    resolved = "# demo, with the base's line and the task's line\n"
    fake.jobs = [resolve_job(origin, head, resolved, test="grep -q new app/auth.py")]
    await run_until(make_runner(url, tmp_path), fake, 1)

    result = fake.results[JOB_ID]
    assert result["outcome"] == "completed", result
    pushed = remote(clone, BRANCH)
    assert result["head_sha"] == pushed != head
    sh(clone, "fetch", "--quiet", "origin")
    assert sh(clone, "rev-parse", f"{pushed}~1") == sh(clone, "rev-parse", "origin/main")
    assert sh(clone, "show", f"{pushed}:README.md") + "\n" == resolved
    assert sh(clone, "log", "-1", "--format=%an %cn", pushed) == "stoneforge[bot] stoneforge[bot]"
    assert "README.md" in result["summary"]
    assert [(t["try"], t["outcome"]) for t in result["attempt_log"]] == [(1, "completed")]
    assert not list((tmp_path / "work" / "resolve").glob("*"))  # the worktree is gone


async def test_markers_left_behind_are_refused_and_nothing_is_pushed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    clone, head = conflicted(origin, tmp_path)
    sloppy = "<<<<<<< HEAD\n# demo, with the base's line\n=======\n# demo\n>>>>>>> task\n"
    fake.jobs = [resolve_job(origin, head, sloppy)]
    await run_until(make_runner(url, tmp_path), fake, 1)

    result = fake.results[JOB_ID]
    assert (result["outcome"], result["reason"]) == ("failed", "resolve_failed"), result
    assert result["detail"].splitlines()[0] == "README.md"
    assert "conflict markers left in README.md" in result["detail"]
    assert remote(clone, BRANCH) == head  # nothing pushed
    assert not list((tmp_path / "work" / "resolve").glob("*"))


def test_only_git_markers_count(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Title\n=======\n")  # a Markdown heading's underline
    (tmp_path / "b.py").write_text("x = 1\n>>>>>>> theirs\n")
    assert markers_left(tmp_path, ["a.md", "b.py", "gone.txt"]) == ["b.py"]
