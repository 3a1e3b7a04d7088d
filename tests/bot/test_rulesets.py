"""The steward honours a required check and a required approval that only a repository ruleset
declares, and tells on the pull request's head, in its ``stoneforge`` check, what it waits for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakehub.records import CheckRun
from tests.harness import World, open_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # no CI, no classic branch protection; snapshots re-read each second (the base moves)
    with open_world(tmp_path, bot=True, bot_env={"steward_refresh_s": 1.0}) as w:
        yield w


def _steward_check(world: World, sha: str) -> CheckRun | None:
    runs = [r for r in world.hub.state.runs_for(world.repo, sha) if r.name == "stoneforge"]
    assert len(runs) <= 1, "one stoneforge check per head, updated in place"
    return runs[0] if runs else None


@pytest.mark.slow
def test_a_check_and_a_review_required_only_by_a_ruleset_are_waited_for(world: World) -> None:
    with world.api() as lead:
        lead.post(
            f"/repos/{world.repo.full_name}/rulesets",
            json={
                "name": "gate",
                "target": "branch",
                "enforcement": "active",
                "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
                "rules": [
                    {
                        "type": "required_status_checks",
                        "parameters": {
                            "strict_required_status_checks_policy": True,
                            "required_status_checks": [{"context": "gate"}],
                        },
                    },
                    {"type": "pull_request", "parameters": {"required_approving_review_count": 1}},
                ],
            },
        ).raise_for_status()
    issue = world.file_labeled("Add the greeting")
    job = world.wait_until(lambda: world.claim(wait_s=1), what="the task handed out")
    world.work(job, {"greeting.txt": "hi\n"})
    task = world.wait_until(lambda: world.tasks()[issue].get("pr") and world.tasks()[issue])
    sha = world.wait_until(lambda: world.tasks()[issue]["head_sha"], what="the head")

    waiting = world.wait_until(
        lambda: (run := _steward_check(world, sha)) and "'gate'" in run.output["title"] and run,
        what="the stoneforge check naming the ruleset's check",
    )
    assert waiting.status == "in_progress"
    assert waiting.output["title"] == "waiting for required check 'gate'"
    assert world.tasks()[issue]["state"] == "in_review"
    assert world.hub.events("merge") == []

    # The base moves: the rule is strict, so the steward brings the branch up to date, and the
    # check on the former head is completed as superseded.
    world.push_main({"NOTES.md": "a maintainer's change\n"})
    sha = world.wait_until(
        lambda: (head := world.tasks()[issue]["head_sha"]) != waiting.head_sha and head,
        what="the branch updated",
    )
    old = world.wait_until(
        lambda: (run := _steward_check(world, waiting.head_sha)) and run.conclusion and run,
        what="the check on the former head completed",
    )
    assert (old.conclusion, old.output["title"]) == (
        "neutral",
        f"superseded: the head of pull request #{task['pr']} moved to {sha[:7]}",
    )
    world.wait_until(
        lambda: (run := _steward_check(world, sha)) and "'gate'" in run.output["title"],
        what="the stoneforge check on the new head",
    )

    with world.api() as lead:
        lead.post(
            f"/repos/{world.repo.full_name}/statuses/{sha}",
            json={"state": "success", "context": "gate"},
        ).raise_for_status()
    approvals = world.wait_until(
        lambda: (run := _steward_check(world, sha)) and "approving" in run.output["title"] and run,
        what="the stoneforge check waiting for an approval",
    )
    assert approvals.output["title"] == "waiting for approving reviews: 0 of 1"
    assert world.hub.events("merge") == []
    with world.api() as lead:
        lead.post(
            f"/repos/{world.repo.full_name}/pulls/{task['pr']}/reviews", json={"event": "APPROVE"}
        ).raise_for_status()
    world.wait_until(lambda: world.tasks()[issue]["state"] == "merged", what="merged")
    (merge,) = [e for e in world.hub.events("merge") if e["pr"] == task["pr"]]
    assert merge["checks"]["gate"] == "success"
    done = world.wait_until(
        lambda: (run := _steward_check(world, sha)) and run.status == "completed" and run,
        what="the stoneforge check completed",
    )
    assert (done.id, done.conclusion, done.output["title"]) == (
        approvals.id,
        "success",
        "merged into main",
    )
