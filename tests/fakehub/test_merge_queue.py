"""GitHub's merge queue in fakehub: a base whose ruleset requires it refuses direct merges
(405), takes pull requests through ``merge-async``, tests each as a real merge group on a
``gh-readonly-queue/`` branch, lands the group's commit exactly, and dequeues a red group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from fakehub.server import FakeHub
from tests.fakehub.conftest import FULL, make_world
from tests.fakehub.openapi import Spec
from tests.harness import Receiver, World, git

#: red when the tree has both a.txt and b.txt
CI = [
    sys.executable,
    "-c",
    "import os, sys; sys.exit(1 if os.path.exists('a.txt') and os.path.exists('b.txt') else 0)",
]


def _queue_ruleset(contexts: list[str]) -> dict[str, Any]:
    return {
        "name": "queue",
        "target": "branch",
        "enforcement": "active",
        "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
        "rules": [
            {
                "type": "required_status_checks",
                "parameters": {
                    "strict_required_status_checks_policy": False,
                    "required_status_checks": [{"context": c} for c in contexts],
                },
            },
            {
                "type": "merge_queue",
                "parameters": {
                    "check_response_timeout_minutes": 60,
                    "grouping_strategy": "ALLGREEN",
                    "max_entries_to_build": 5,
                    "max_entries_to_merge": 5,
                    "min_entries_to_merge": 1,
                    "min_entries_to_merge_wait_minutes": 0,
                    "merge_method": "MERGE",
                },
            },
        ],
    }


@pytest.fixture
def queued(hub: FakeHub, receiver: Receiver, tmp_path: Path) -> World:
    world = make_world(hub, receiver, tmp_path, ci_command=CI)
    world.hub.state.installations[world.installation_id].events.append("merge_group")
    with world.api() as lead:
        lead.post(f"/repos/{FULL}/rulesets", json=_queue_ruleset(["ci"])).raise_for_status()
    return world


def _pull(world: World, branch: str, files: dict[str, str]) -> tuple[int, str]:
    work = world.clone(branch.replace("/", "-"))
    sha = world.push_branch(work, branch, files, f"work on {branch}")
    git(work, "checkout", "-q", "main")
    with world.client() as bot:
        resp = bot.post(
            f"/repos/{FULL}/pulls", json={"title": branch, "head": branch, "base": "main"}
        )
        resp.raise_for_status()
    number = int(resp.json()["number"])
    world.wait_until(
        lambda: any(e["sha"] == sha for e in world.hub.events("check_completed")),
        what="CI on the pull request's head",
    )
    return number, sha


def test_a_queue_base_refuses_the_merge_endpoint_and_lands_the_group_commit(
    queued: World, spec: Spec
) -> None:
    world, receiver = queued, queued.receiver
    assert receiver is not None
    number, sha = _pull(world, "sf/one", {"one.txt": "1\n"})
    base_before = world.hub.store.ref_sha(FULL, "main")
    with world.client() as bot:
        refused = bot.put(f"/repos/{FULL}/pulls/{number}/merge", json={"sha": sha})
        assert refused.status_code == 405
        assert "Changes must be made through the merge queue" in refused.json()["message"]
        path = f"/repos/{FULL}/pulls/{number}/merge-async"
        accepted = bot.put(path, json={"merge_action": "merge_queue", "sha": sha})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "pending"
    uuid = accepted.json()["details"]["uuid"]
    assert spec.validate_response("PUT", path, 202, accepted.json()) == []

    world.wait_event(lambda e: e["type"] == "dequeued" and e["pr"] == number, timeout=30)
    (merged,) = world.hub.events("merge")
    (group,) = world.hub.events("merge_group")
    assert group["ref"] == f"gh-readonly-queue/main/pr-{number}-{sha}"
    assert group["base_sha"] == base_before
    assert merged["via"] == "merge_queue"
    assert merged["merge_sha"] == group["head_sha"]
    assert merged["checks"]["ci"] == "success", "landed green on the group's head"
    # The base is exactly the tested commit: a real merge of the base and the head.
    assert world.hub.store.ref_sha(FULL, "main") == group["head_sha"]
    parents = world.hub.store.commit_info(FULL, group["head_sha"]).parents
    assert list(parents) == [base_before, sha]
    assert world.hub.store.ref_sha(FULL, group["ref"]) is None, "the group's branch is gone"

    with world.client() as bot:
        pull = bot.get(f"/repos/{FULL}/pulls/{number}").json()
        result = bot.get(f"{path}/{uuid}")
    assert (pull["merged"], pull["merge_commit_sha"]) == (True, group["head_sha"])
    assert result.json()["status"] == "merged"
    assert spec.validate_response("GET", f"{path}/{{uuid}}", 200, result.json()) == []
    assert [e["pr"] for e in world.hub.events("merge_requested")] == [number]
    assert world.hub.events("merge_refused")[0]["status"] == 405

    requested = receiver.wait_for(lambda h: h.event == "merge_group")
    assert requested.payload["action"] == "checks_requested"
    assert requested.payload["merge_group"]["head_ref"] == f"refs/heads/{group['ref']}"
    destroyed = receiver.wait_for(
        lambda h: h.event == "merge_group" and h.payload["action"] == "destroyed"
    )
    assert destroyed.payload["reason"] == "merged"
    dequeued = receiver.wait_for(
        lambda h: h.event == "pull_request" and h.payload["action"] == "dequeued"
    )
    assert dequeued.payload["reason"] == "MERGE"
    assert receiver.of("pull_request", "enqueued")
    closed = receiver.wait_for(
        lambda h: h.event == "pull_request" and h.payload["action"] == "closed"
    )
    assert closed.payload["pull_request"]["merged"] is True
    for hook in (requested, destroyed, dequeued, receiver.of("pull_request", "enqueued")[0]):
        assert spec.validate_webhook(hook.event, hook.payload) == [], hook.event


def test_a_red_group_is_dequeued_and_the_entry_behind_it_lands(queued: World) -> None:
    world, receiver = queued, queued.receiver
    assert receiver is not None
    # Each is green on its own head; a.txt and b.txt together are red (a semantic conflict).
    one, one_sha = _pull(world, "sf/one", {"a.txt": "a\n"})
    two, two_sha = _pull(world, "sf/two", {"b.txt": "b\n"})
    three, three_sha = _pull(world, "sf/three", {"c.txt": "c\n"})
    with world.client() as bot:
        for number, sha in ((one, one_sha), (two, two_sha), (three, three_sha)):
            bot.put(
                f"/repos/{FULL}/pulls/{number}/merge-async",
                json={"merge_action": "merge_queue", "sha": sha},
            ).raise_for_status()
    world.wait_event(lambda e: e["type"] == "dequeued" and e["pr"] == three, timeout=60)
    assert [e["pr"] for e in world.hub.events("merge")] == [one, three], "in queue order"
    dequeued = {e["pr"]: e["reason"] for e in world.hub.events("dequeued")}
    assert dequeued == {one: "MERGE", two: "CI_FAILURE", three: "MERGE"}
    groups = {e["pr"]: e for e in world.hub.events("merge_group")}
    two_group = groups[two]["head_sha"]
    assert world.hub.state.check_states(world.repo, two_group)["ci"] == "failure"
    assert world.hub.store.read_file(FULL, "main", "b.txt") is None, "never landed red"
    with world.client() as bot:
        pull = bot.get(f"/repos/{FULL}/pulls/{two}").json()
    assert (pull["state"], pull["merged"]) == ("open", False)
    hook = receiver.wait_for(
        lambda h: (
            h.event == "pull_request"
            and h.payload["action"] == "dequeued"
            and h.payload["number"] == two
        )
    )
    assert hook.payload["reason"] == "CI_FAILURE"
    destroyed = receiver.wait_for(
        lambda h: (
            h.event == "merge_group"
            and h.payload["action"] == "destroyed"
            and h.payload["merge_group"]["head_sha"] == two_group
        )
    )
    assert destroyed.payload["reason"] == "dequeued"


def test_only_basic_state_is_refused_at_once(queued: World) -> None:
    world = queued
    number, sha = _pull(world, "sf/draftish", {"d.txt": "d\n"})
    with world.client() as bot:
        path = f"/repos/{FULL}/pulls/{number}/merge-async"
        moved = bot.put(path, json={"merge_action": "merge_queue", "sha": "0" * 40})
        assert moved.status_code == 202
        result = bot.get(f"{path}/{moved.json()['details']['uuid']}").json()
        assert result["status"] == "failed"
        assert "modified" in result["details"]["message"]
        bot.patch(f"/repos/{FULL}/pulls/{number}", json={"state": "closed"}).raise_for_status()
        closed = bot.put(path, json={"merge_action": "merge_queue", "sha": sha})
    assert closed.status_code == 400
    assert closed.json()["status"] == "failed"
    assert world.hub.events("enqueued") == []
