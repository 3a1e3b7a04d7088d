"""``stoneforge demo --plan`` end to end: one epic, ``/stoneforge plan`` and ``/stoneforge approve``
as the maintainer, and the plan run to completion through fakehub, the bot and a runner (real
processes, real git, real webhooks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.plan_run import run_plan_demo
from demo.sample import PLAN_EPIC
from tests.core.test_plan import parse_mermaid

pytestmark = pytest.mark.slow


def depth(tasks: dict[int, dict[str, object]], issue: int) -> int:
    blockers = tasks[issue]["blocked_by"]
    assert isinstance(blockers, list)
    return 1 + max((depth(tasks, b) for b in blockers if b in tasks), default=-1)


def test_demo_plan_runs_an_epic_to_completion(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code = run_plan_demo(
        workers=3,
        report=report,
        timeout=480,
        work_dir=tmp_path / "work",
        runner_env={"STONEFORGE_SCRIPT_SLEEP_SCALE": "0.2"},
    )
    data = json.loads(report.read_text())
    assert code == 0, data
    rows = {row["issue"]: row for row in data["tasks"]}
    planned = PLAN_EPIC.plan["tasks"]
    # Every task of the plan, each once, under one plan id, as the director filed it.
    assert isinstance(data["plan_id"], str)
    assert sorted(row["planned_index"] for row in rows.values()) == list(range(len(planned)))
    assert len(rows) >= 8
    by_index = {row["planned_index"]: row for row in rows.values()}
    for index, task in enumerate(planned):
        row = by_index[index]
        assert row["title"] == task["title"]
        assert sorted(by_index[b]["issue"] for b in task.get("blockers", [])) == sorted(
            row["blocked_by"]
        )
    assert max(depth(rows, n) for n in rows) >= 2  # at least three levels
    # Merged in dependency order: never before a blocker, never dispatched before it merged.
    for row in rows.values():
        assert row["merged_at"] is not None
        for blocker in row["blocked_by"]:
            assert rows[blocker]["merged_at"] < row["dispatched_at"] < row["merged_at"]
    # The epic: closed as completed, its plan comment's graph showing every task merged.
    story = data["epic_story"]
    assert (story["state"], story["state_reason"]) == ("closed", "completed")
    nodes, edges, _ = parse_mermaid(_mermaid(story["plan_comment"]))
    assert len(nodes) == len(planned)
    assert {cls for _, cls in nodes.values()} == {"merged"}
    assert len(edges) == sum(len(set(t.get("blockers", []))) for t in planned)
    assert any("#" + str(next(iter(rows))) in label for label, _ in nodes.values())
    summary = [c for c in story["comments"] if "Stoneforge plan completed" in c]
    assert summary, story["comments"]


def _mermaid(comment: str) -> str:
    start = comment.index("```mermaid\n") + len("```mermaid\n")
    return comment[start : comment.index("\n```", start)]
