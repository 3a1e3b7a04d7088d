"""A steward's job whose runner vanished (its lease expired) comes back as the same job, not as
a fresh implementation: here a resolve_conflicts job that had already pushed its resolution
before its runner died. Run again, it finds the branch moved, and the task goes back to review
without a word; the steward merges the resolved head. Found by the chaos suite."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core.protocol import CompletedResult, FailedResult
from tests.bot.test_rebase_pipeline import conflicting_pull, resolve_here
from tests.harness import World

pytestmark = pytest.mark.slow


@pytest.fixture
def bot_env() -> dict[str, Any]:
    return {"lease_s": 4.0}  # a job nobody reports on is lost after 4 s


def resolve(world: World, claimed: dict[str, Any]) -> CompletedResult | FailedResult:
    result = resolve_here(world, claimed)
    assert isinstance(result, CompletedResult | FailedResult), result
    return result


def test_a_lost_resolution_comes_back_as_itself_and_its_pushed_work_merges(world: World) -> None:
    script = {"edits": [{"path": "shared.txt", "write": "hello from the task\n"}], "summary": "hi"}
    body = f"Greet.\n\n```stoneforge-script\n{json.dumps(script)}\n```\n"
    number, rebase = conflicting_pull(world, body)

    first = world.wait_until(lambda: world.claim(wait_s=1), what="a resolve job")
    assert first["kind"] == "resolve_conflicts"
    pushed = resolve(world, first)
    assert isinstance(pushed, CompletedResult), pushed  # pushed, never reported: the runner died

    again = world.wait_until(lambda: world.claim(wait_s=1), what="the job again", timeout=60)
    assert again["kind"] == "resolve_conflicts", "the same job, not a fresh agent run"
    assert again["expected_head"] == first["expected_head"]
    moved = resolve(world, again)
    assert isinstance(moved, FailedResult)
    assert moved.reason.value == "branch_moved"
    answer = world.report(again, moved.model_dump(mode="json", exclude={"branch"}))
    assert answer.status_code == 200, answer.text

    assert world.wait_until(
        lambda: world.tasks()[number]["state"] == "merged", what="the resolved head merged"
    )
    merged = [e for e in world.hub.events("merge") if e["pr"] == rebase["pull_number"]]
    assert [e["head_sha"] for e in merged] == [pushed.head_sha]
    said = world.comments(rebase["pull_number"])
    assert not [c for c in said if "did not rebase it" in c], "nothing to tell anyone"
