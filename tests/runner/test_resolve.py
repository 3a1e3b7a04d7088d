"""Resolve-conflicts jobs (``runner.resolve``) with real git, a real runner and the script agent:
the rebase stops at a real conflict, the agent rewrites the file, and the rebased head is
pushed with the lease; markers left behind are refused and nothing is pushed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

import runner.agents
from runner.agents.base import Invocation, RunRequest
from runner.agents.script import ScriptAdapter
from runner.loop import Runner
from runner.resolve import markers_left
from tests.harness.runner_bot import TOKEN, Bot, job, run_until
from tests.runner.test_rebase import commit, remote, sh

BRANCH = "stoneforge/5-task"
JOB_ID = "octo/demo#5@4"


class RecordingAdapter(ScriptAdapter):
    """The script agent, keeping each prompt it is given."""

    name = "recording"
    prompts: ClassVar[list[str]] = []

    def build(self, req: RunRequest) -> Invocation:
        self.prompts.append(req.prompt)
        return super().build(req)


def conflicted(origin: Path, tmp_path: Path, commits: int = 1) -> tuple[Path, str]:
    """A clone whose task branch (the App's, ``commits`` commits) and main (someone else's)
    rewrite the same line of README.md; main also changed app/auth.py."""
    clone = tmp_path / "clone"
    sh(tmp_path, "clone", "--quiet", str(origin), str(clone))
    sh(clone, "checkout", "--quiet", "-b", BRANCH)
    head = commit(clone, BRANCH, "README.md", "# demo, with the task's line\n")
    for n in range(2, commits + 1):
        head = commit(clone, BRANCH, "README.md", f"# demo, with the task's line {n}\n")
    commit(clone, "main", "app/auth.py", "SECRET = 'new'\n", author=("Rita", "r@x"))
    commit(clone, "main", "README.md", "# demo, with the base's line\n", author=("Rita", "r@x"))
    return clone, head


def resolve_job(
    origin: Path, head: str, content: str, test: str | None = None, agent: str = "script"
) -> dict[str, Any]:
    edits = [{"path": "README.md", "write": content}, {"path": "stray.txt", "write": "x\n"},
             {"path": ".gitignore", "write": "everything\n"}]  # fmt: skip
    # The script agent's ``resolve`` script: the resolution written out (without one it keeps
    # both sides).
    script = {
        "edits": [],
        "summary": "the task",
        "resolve": {"edits": edits, "summary": "resolved"},
    }
    return job(
        origin, 5, script, kind="resolve_conflicts", job_id=JOB_ID, branch=BRANCH,
        expected_head=head, pull_number=12, conflicts=["README.md"], round=1,
        commands={"test": test}, agent={"name": agent, "model": None},
    )  # fmt: skip


def make_runner(url: str, tmp_path: Path) -> Runner:
    return Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", heartbeat_s=0.2,
                  claim_wait_s=1, retry_base_s=0.05)  # fmt: skip


async def test_the_agent_resolves_each_stop_and_the_rebased_head_is_pushed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(runner.agents._FACTORIES, "recording", RecordingAdapter)
    monkeypatch.setattr(RecordingAdapter, "prompts", [])
    fake, url = bot
    clone, head = conflicted(origin, tmp_path, commits=2)  # the rebase stops twice
    resolved = "# demo, with the base's line and the task's line\n"
    test = "grep -q new app/auth.py"
    fake.jobs = [resolve_job(origin, head, resolved, test=test, agent="recording")]
    await run_until(make_runner(url, tmp_path), fake, 1)

    result = fake.results[JOB_ID]
    assert result["outcome"] == "completed", result
    pushed = remote(clone, BRANCH)
    assert result["head_sha"] == pushed != head
    sh(clone, "fetch", "--quiet", "origin")
    assert sh(clone, "rev-parse", f"{pushed}~1") == sh(clone, "rev-parse", "origin/main")
    assert sh(clone, "show", f"{pushed}:README.md") + "\n" == resolved
    # Only the resolution goes in: the agent's other edits are discarded.
    assert "stray.txt" not in sh(clone, "ls-tree", "--name-only", pushed)
    assert sh(clone, "show", f"{pushed}:.gitignore") == "build/"
    assert sh(clone, "log", "-1", "--format=%an %cn", pushed) == "stoneforge[bot] stoneforge[bot]"
    assert "README.md" in result["summary"]
    tries = [(t["try"], t["outcome"]) for t in result["attempt_log"]]
    assert tries == [(1, "completed"), (2, "completed")]
    # The second stop's commit is empty once resolved the same way: skipped, not pushed.
    assert sh(clone, "rev-list", "--count", f"origin/main..{pushed}") == "1"
    # The agent saw the markers, the task's diff, and main's commit that touched the file.
    first = RecordingAdapter.prompts[0]
    assert "<<<<<<< " in first
    assert ">>>>>>> " in first
    assert "+# demo, with the task's line" in first
    commits = first.split("that touched these files", 1)[1].split("##", 1)[0]
    assert "edit README.md" in commits
    assert "edit app/auth.py" not in commits
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
