"""A base whose ruleset requires GitHub's merge queue (issue 13, section 4), end to end on
fakehub: the steward enqueues instead of merging (the merge endpoint is never called), tasks
land in dependency order through the queue, and a pull request whose merge group goes red is
dequeued, never merged red, and goes back to its agent with the group's CI output."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import World, git, open_world, wait_until, write_files

pytestmark = pytest.mark.slow

#: red when a.txt is there and b.txt says "bad": green on each head alone, red in a group
CI = [
    sys.executable,
    "-c",
    "import pathlib, sys\n"
    "a = pathlib.Path('a.txt').exists()\n"
    "b = pathlib.Path('b.txt').read_text() if pathlib.Path('b.txt').exists() else ''\n"
    "if a and 'bad' in b:\n"
    "    print('FAILED tests/test_combo.py::test_combo - a.txt with a bad b.txt')\n"
    "    sys.exit(1)\n"
    "print('1 passed')\n",
]

RULESET = {
    "name": "queue",
    "target": "branch",
    "enforcement": "active",
    "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
    "rules": [
        {
            "type": "required_status_checks",
            "parameters": {
                "strict_required_status_checks_policy": False,
                "required_status_checks": [{"context": "ci"}],
            },
        },
        {
            "type": "merge_queue",
            "parameters": {
                "check_response_timeout_minutes": 10,
                "grouping_strategy": "ALLGREEN",
                "max_entries_to_build": 1,
                "max_entries_to_merge": 1,
                "min_entries_to_merge": 1,
                "min_entries_to_merge_wait_minutes": 0,
                "merge_method": "MERGE",
            },
        },
    ],
}


def _work_at(world: World, job: dict[str, Any], files: dict[str, str], base: str) -> str:
    """A runner's work, started from ``base`` (an older main) rather than the current tip."""
    checkout = world.tmp / f"job-{job['issue']}-{time.monotonic_ns()}"
    git(world.tmp, "clone", "-q", job["clone_url"], str(checkout), token=job["token"])
    git(checkout, "checkout", "-q", "-b", job["branch"], base)
    write_files(checkout, files)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", job["title"])
    git(checkout, "push", "-q", "origin", f"HEAD:refs/heads/{job['branch']}", token=job["token"])
    sha = git(checkout, "rev-parse", "HEAD").strip()
    done = {"outcome": "completed", "reason": "success", "head_sha": sha, "summary": "done"}
    assert world.report(job, done, agent_seconds=0.1).status_code == 200
    return sha


def test_tasks_land_through_the_merge_queue_and_a_red_group_is_dequeued(tmp_path: Path) -> None:
    with open_world(tmp_path, bot=True, ci_command=CI, bot_env={"steward_refresh_s": 1.0}) as world:
        with world.api() as lead:
            lead.post(f"/repos/{world.repo.full_name}/rulesets", json=RULESET).raise_for_status()
        start = world.hub.store.ref_sha(world.repo.full_name, "main")
        assert start is not None
        first = world.file("Add a")
        other = world.file("Add b")
        second = world.file("Add c, after a")
        world.block(second["number"], first)
        for issue in (first, other, second):
            world.label(issue["number"])
        a_job = wait_until(lambda: world.claim(wait_s=1), what="the first task handed out")
        b_job = wait_until(lambda: world.claim(wait_s=1), what="the independent task")
        assert (a_job["issue"], b_job["issue"]) == (first["number"], other["number"])
        assert world.claim() is None, "the dependent task waits for its blocker to merge"

        world.work(a_job, {"a.txt": "a\n"})
        world.wait_until(lambda: world.tasks()[first["number"]]["state"] == "merged", timeout=60)
        # Started before a.txt landed: green on its own head, red once queued on today's main.
        b_sha = _work_at(world, b_job, {"b.txt": "bad\n"}, start)
        c_job = wait_until(lambda: world.claim(wait_s=1), what="the dependent task, unblocked")
        assert c_job["issue"] == second["number"]
        world.work(c_job, {"c.txt": "c\n"})

        fix = wait_until(lambda: world.claim(wait_s=1), timeout=60, what="the fix_checks job")
        assert (fix["kind"], fix["issue"], fix["round"]) == ("fix_checks", other["number"], 1)
        (failure,) = fix["check_failures"]
        assert "FAILED tests/test_combo.py::test_combo - a.txt with a bad b.txt" in failure
        events = world.hub.events()
        red = [e for e in events if e["type"] == "dequeued" and e["reason"] == "CI_FAILURE"]
        assert [(e["pr"], e["head_sha"]) for e in red] == [
            (world.tasks()[other["number"]]["pr"], b_sha)
        ]
        assert world.hub.state.check_states(world.repo, b_sha)["ci"] == "success"
        assert world.hub.state.check_states(world.repo, red[0]["group_sha"])["ci"] == "failure"

        world.work(fix, {"b.txt": "good\n"}, from_branch=True)
        for issue in (first, other, second):
            world.wait_until(
                lambda n=issue["number"]: world.tasks()[n]["state"] == "merged", timeout=60
            )

        merges = world.hub.events("merge")
        prs = {n: world.tasks()[n]["pr"] for n in (first["number"], other["number"])}
        by_pr = [m["pr"] for m in merges]
        assert by_pr.index(prs[first["number"]]) < by_pr.index(
            world.tasks()[second["number"]]["pr"]
        )
        assert all(m["via"] == "merge_queue" for m in merges), "every merge went through the queue"
        assert all(m["checks"]["ci"] == "success" for m in merges), "each group landed green"
        assert b_sha not in {m["head_sha"] for m in merges}, "the red group's head never landed"
        assert world.hub.events("merge_requested") == [], "the merge endpoint was never called"
        enqueues = [e["pr"] for e in world.hub.events("enqueued")]
        assert len(enqueues) == len(set(enqueues)) + 1, "each head enqueued once (b's twice)"
        main = world.hub.store.ref_sha(world.repo.full_name, "main")
        assert main == merges[-1]["merge_sha"], "the base is the last group's tested commit"
