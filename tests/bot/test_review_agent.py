"""Review by an agent end to end through fakehub (issue 13, section 3): with ``review``
configured, the steward sends a review job for the green head before merging; the review
agent's "changes requested", with a line comment, is posted as the App's review and goes back to
the task's agent as a revise job; the revised head is reviewed in round 2, approved, and only
then merged. The review jobs run on the runner's own code (``runner.review``: fetched from
fakehub with the job's read-only token, the script agent writing each round's verdict); the rest
of the runner is the test. Checked from fakehub's own records."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.core.protocol import ReviewedResult, ReviewJob
from runner.git import RepoMirror
from runner.job import Control
from runner.review import run_review
from runner.tries import AgentTries
from tests.harness import World

pytestmark = pytest.mark.slow


def _configure(world: World) -> None:
    assert world.bot is not None
    repos = world.bot.app.state.bot.repos
    world.push_main({".github/stoneforge.yml": "version: 1\nreview:\n  agent: script\n"})
    world.wait_until(
        lambda: repos.config(world.repo.full_name).review is not None,
        what="the configuration loaded",
    )


def _steward_check(world: World, sha: str) -> str | None:
    runs = world.get(f"/repos/{world.repo.full_name}/commits/{sha}/check-runs")["check_runs"]
    return next((r["output"]["title"] for r in runs if r["name"] == "stoneforge"), None)


VERDICTS = {
    "rounds": [
        {
            "event": "REQUEST_CHANGES",
            "body": "The issue asks for Hello.",
            "comments": [{"path": "greeting.txt", "line": 1, "body": "Say Hello."}],
        },
        {"event": "APPROVE", "body": "Says Hello now."},
    ]
}
ISSUE = (
    f"Greet the user.\n\n- [ ] says Hello\n\n```stoneforge-review\n{json.dumps(VERDICTS)}\n```\n"
)


def _review(world: World, claimed: dict[str, Any]) -> ReviewedResult:
    """Run the claimed review job as a runner does, and report its result."""
    job = ReviewJob.model_validate(claimed)
    work = world.tmp / "runner"
    tries = AgentTries(
        work_dir=work, agent_override=None, agent_timeout_s=60, stall_timeout_s=60,
        test_timeout_s=60, rate_limit_pause_s=60, logs_kept=5, runner_token="r" * 16,
        pause=lambda agent, until: None, emit=lambda *a, **k: None,
    )  # fmt: skip
    mirror = RepoMirror(work, job.repo, job.clone_url)
    result = asyncio.run(run_review("w0", job, mirror, work, tries, Control(), None))
    assert isinstance(result, ReviewedResult), result
    answer = world.report(claimed, result.model_dump(mode="json", exclude={"branch"}))
    assert answer.status_code == 200, answer.text
    return result


def _claim(world: World, kind: str) -> dict[str, Any]:
    job = world.wait_until(lambda: world.claim(wait_s=1), what=f"a {kind} job")
    assert job["kind"] == kind, job
    return job  # type: ignore[no-any-return]


def test_changes_requested_by_the_review_agent_are_revised_then_approved_and_merged(
    world: World,
) -> None:
    assert world.bot is not None
    app_login = world.bot.app.state.bot.bot_login
    _configure(world)
    number = world.file_labeled("Add the greeting", ISSUE)
    world.work(_claim(world, "implement"), {"greeting.txt": "hi\n"})

    first = _claim(world, "review")
    task = world.tasks()[number]
    assert (first["head"], first["pull_number"], first["round"], first["max_rounds"]) == (
        task["head_sha"], task["pr"], 1, 2,
    )  # fmt: skip
    assert first["agent"]["name"] == "script"
    assert first["branch"] == task["branch"]
    assert "says Hello" in first["body"]
    assert world.hub.events("merge") == [], "not merged before the review"
    world.wait_until(
        lambda: _steward_check(world, first["head"]) == "reviewing (round 1 of 2)",
        what="the stoneforge check to say so",
    )
    changes = _review(world, first)
    assert (changes.event, changes.head_sha) == ("REQUEST_CHANGES", first["head"])

    revise = _claim(world, "revise")
    assert revise["review_feedback"][0].startswith(f"@{app_login}: ")
    assert "The issue asks for Hello." in revise["review_feedback"][0]
    assert revise["review_feedback"][1:] == ["greeting.txt:1: Say Hello."]
    world.work(revise, {"greeting.txt": "Hello\n"}, from_branch=True)

    second = _claim(world, "review")
    revised = world.tasks()[number]["head_sha"]
    assert (second["head"], second["round"]) == (revised, 2)
    assert revised != first["head"]
    assert world.hub.events("merge") == [], "not merged before the approval"
    approve = _review(world, second)
    assert (approve.event, approve.head_sha) == ("APPROVE", revised)

    world.wait_until(lambda: world.tasks()[number]["state"] == "merged", what="merged")
    # fakehub's records: both reviews by the App (a Bot), the first with its line comment
    submitted = [e for e in world.hub.events("review_submitted") if e["pr"] == task["pr"]]
    assert [e["by"] for e in submitted] == [app_login, app_login]
    reviews = world.get(f"/repos/{world.repo.full_name}/pulls/{task['pr']}/reviews")
    assert [(r["user"]["login"], r["user"]["type"], r["commit_id"]) for r in reviews] == [
        (app_login, "Bot", first["head"]), (app_login, "Bot", revised),
    ]  # fmt: skip
    assert "The review agent requests changes" in reviews[0]["body"]
    assert "The review agent approves" in reviews[1]["body"]
    comments = world.get(f"/repos/{world.repo.full_name}/pulls/{task['pr']}/comments")
    assert [(c["user"]["login"], c["path"], c["line"], c["body"]) for c in comments] == [
        (app_login, "greeting.txt", 1, "Say Hello.")
    ]
    assert comments[0]["pull_request_review_id"] == reviews[0]["id"]
    # merged once, at the approved head, after the approval
    (merge,) = world.hub.events("merge")
    assert merge["head_sha"] == revised
    assert merge["at"] > submitted[1]["at"]
    assert world.claim() is None, "no third review"
