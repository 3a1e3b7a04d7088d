"""The bot against fakehub, with the runner's side played by the test over HTTP and real git.

Covers dependency gating (a task is handed out only once its blockers merged), the steward
(merges with green required checks; never merges red), and webhook-driven task intake.
"""

from __future__ import annotations

from tests.harness import World, wait_until


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
