"""A required check red again after its re-run goes back to the agent (issue 13, section 2).

Through fakehub's webhooks and its real CI: the steward sends a ``fix_checks`` job on the same
branch carrying the check run's output; the agent's fix turns it green and the pull request
merges. A check still red after ``steward.fix_attempts`` rounds fails the task, quoting the
failure, and is never merged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness import World, open_world, wait_until

pytestmark = pytest.mark.slow

#: red while state.txt says so, with a test-runner-like line in its output
CI = [
    sys.executable,
    "-c",
    "import pathlib, sys\n"
    "p = pathlib.Path('state.txt')\n"
    "t = p.read_text() if p.exists() else ''\n"
    "if 'red' in t:\n"
    "    print('FAILED tests/test_state.py::test_state - state.txt says', t.strip())\n"
    "    sys.exit(1)\n"
    "print('1 passed')\n",
]


def _configure(world: World, fix_attempts: int) -> None:
    assert world.bot is not None
    repos = world.bot.app.state.bot.repos
    world.push_main(
        {".github/stoneforge.yml": f"version: 1\nsteward:\n  fix_attempts: {fix_attempts}\n"}
    )
    world.wait_until(
        lambda: repos.config(world.repo.full_name).steward.fix_attempts == fix_attempts,
        what="the configuration loaded",
    )


def _red_pull(world: World, title: str) -> tuple[int, dict[str, Any]]:
    """A task whose agent pushes a head its CI fails (on its re-run too); the job that
    comes back for it."""
    number = world.file_labeled(title)
    job = wait_until(lambda: world.claim(wait_s=1), what="the task to be handed out")
    assert job["kind"] == "implement"
    world.work(job, {"state.txt": "red\n"})
    fix = wait_until(lambda: world.claim(wait_s=1), what="the fix_checks job")
    return number, fix


def _ci_runs(world: World, sha: str) -> list[str]:
    return [
        e["conclusion"]
        for e in world.hub.events("check_completed")
        if e["sha"] == sha and e["name"] == "ci"
    ]


def test_a_check_red_after_its_re_run_is_fixed_by_the_agent_and_merges(tmp_path: Path) -> None:
    with open_world(tmp_path, bot=True, ci_command=CI, required=["ci"]) as world:
        number, fix = _red_pull(world, "Fix the state")
        task = world.tasks()[number]
        assert task["state"] == "running"
        assert (fix["kind"], fix["round"], fix["pull_number"]) == ("fix_checks", 1, task["pr"])
        assert fix["branch"] == task["branch"]
        (failure,) = fix["check_failures"]
        assert failure.startswith("ci: failure\n")
        assert "FAILED tests/test_state.py::test_state - state.txt says red" in failure
        assert _ci_runs(world, task["head_sha"]) == ["failure", "failure"], "re-run first"

        world.work(fix, {"state.txt": "green\n"}, from_branch=True)
        world.wait_until(lambda: world.tasks()[number]["state"] == "merged", what="merged")
        (merge,) = world.hub.events("merge")
        assert merge["checks"]["ci"] == "success"
        assert world.claim() is None, "no more rounds"


def test_a_check_still_red_after_fix_attempts_fails_the_task_quoting_it(tmp_path: Path) -> None:
    with open_world(tmp_path, bot=True, ci_command=CI, required=["ci"]) as world:
        _configure(world, fix_attempts=1)
        number, fix = _red_pull(world, "Still red")
        assert (fix["kind"], fix["round"]) == ("fix_checks", 1)
        world.work(fix, {"state.txt": "red again\n"}, from_branch=True)

        world.wait_until(lambda: world.tasks()[number]["state"] == "failed", what="failed")
        task = world.tasks()[number]
        detail = task["detail"] or ""
        assert "'ci' concluded failure twice" in detail
        assert "after 1 fix round(s)" in detail
        assert "> FAILED tests/test_state.py::test_state - state.txt says red again" in detail
        assert _ci_runs(world, task["head_sha"]) == ["failure", "failure"]
        world.quiet(quiet_s=1)
        assert world.hub.events("merge") == []
        assert world.claim() is None, "no round past steward.fix_attempts"
