"""The bot against fakehub, with the runner's side played by the test over HTTP and real git.

Covers dependency gating (a task is handed out only once its blockers merged), the steward
(merges with green required checks; never merges red; says what a long wait waits for), and
webhook-driven task intake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.liveness import WAIT_MARKER
from tests.harness import World, open_world, wait_until


def test_blocked_task_waits_for_its_blocker_to_merge_and_red_is_never_merged(world: World) -> None:
    first = world.file("Add the greeting")
    second = world.file("Use the greeting", body=f"Blocked by #{first['number']}")
    third = world.file("Break the build")
    with world.api() as api:  # native dependency: third is blocked by first (database id)
        api.post(
            f"/repos/octo/app/issues/{third['number']}/dependencies/blocked_by",
            json={"issue_id": first["id"]},
        ).raise_for_status()
    for issue in (first, second, third):
        world.label(issue["number"])
    wait_until(lambda: len(world.tasks()) == 3, what="three tasks")
    tasks = world.tasks()
    assert tasks[second["number"]]["blocked_by"] == [f"octo/app#{first['number']}"]
    assert tasks[third["number"]]["blocked_by"] == [f"octo/app#{first['number']}"]

    job = world.claim()
    assert job is not None
    assert job["issue"] == first["number"]
    assert world.claim() is None, "the other two are blocked until the first merges"

    world.work(job, {"greeting.txt": "hi\n"})
    merged = wait_until(
        lambda: world.tasks()[first["number"]]["state"] == "merged", what="first task merged"
    )
    assert merged
    merge = [
        e for e in world.hub.events("merge") if e["pr"] == world.tasks()[first["number"]]["pr"]
    ]
    assert merge
    assert merge[0]["checks"]["ci"] == "success"

    released = {world.claim(wait_s=5)["issue"], world.claim(wait_s=5)["issue"]}
    assert released == {second["number"], third["number"]}
    tasks = world.tasks()
    for number in released:
        assert tasks[number]["dispatched_at"] > tasks[first["number"]]["merged_at"]


def test_a_pull_request_with_a_failing_required_check_is_never_merged(world: World) -> None:
    issue = world.file("Break the build")
    world.label(issue["number"])
    job = wait_until(lambda: world.claim(wait_s=1), what="the task to be handed out")
    world.work(job, {"RED": "this makes CI fail\n"})
    for n in (1, 2):  # steward.fix_attempts: the agent's fixes leave it red
        fix = wait_until(lambda: world.claim(wait_s=1), what=f"fix_checks round {n}")
        assert (fix["kind"], fix["round"]) == ("fix_checks", n)
        world.work(fix, {"RED": f"still red after fix {n}\n"}, from_branch=True)
    failed = wait_until(
        lambda: world.tasks()[issue["number"]]["state"] == "failed", what="task failed"
    )
    assert failed
    task = world.tasks()[issue["number"]]
    assert "ci" in (task["detail"] or "")
    assert world.hub.events("merge") == []
    assert [e for e in world.hub.events("check_completed") if e["conclusion"] == "failure"]

    def labels_added() -> list[str]:  # the label follows the state once it settles
        return [
            e["label"] for e in world.hub.events("label_added") if e["issue"] == issue["number"]
        ]

    assert wait_until(lambda: "stoneforge:needs-human" in labels_added(), what="failure label")


@pytest.mark.slow
def test_a_pull_request_waiting_past_the_timeout_is_told_once_what_it_waits_for(
    tmp_path: Path,
) -> None:
    with open_world(tmp_path, bot=True, required=["ci"]) as world:  # no CI: `ci` never reports
        assert world.bot is not None
        repos = world.bot.app.state.bot.repos
        world.push_main(
            {".github/stoneforge.yml": "version: 1\nsteward:\n  wait_timeout_minutes: 0.05\n"}
        )
        world.wait_until(
            lambda: repos.config(world.repo.full_name).steward.wait_timeout_minutes == 0.05,
            what="the configuration loaded",
        )
        issue = world.file_labeled("Wait for CI")
        job = wait_until(lambda: world.claim(wait_s=1), what="the task to be handed out")
        world.work(job, {"wait.txt": "waiting\n"})
        pr = world.wait_until(lambda: world.tasks()[issue]["pr"], what="the pull request")

        def told() -> list[str]:
            return [c for c in world.comments(pr) if c.startswith(WAIT_MARKER)]

        first = world.wait_until(told, what="a comment saying what the pull request waits for")
        assert f"@{world.maintainer.login}: this pull request has waited" in first[0]
        assert "for required check `ci` to report." in first[0]
        world.quiet(quiet_s=2.0)  # several steward passes (every 0.5 s) see the same wait
        assert told() == first, "one comment per wait"
        assert world.tasks()[issue]["state"] == "in_review"
