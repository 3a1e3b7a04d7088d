"""The demo end to end: every task merges, never before its blockers, never with a red check.

Asserted from fakehub's own record of events, not from what the bot says about itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from demo.run import run_demo
from demo.sample import SPRINT

pytestmark = pytest.mark.slow


def test_demo_merges_every_task_in_dependency_order(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    code = run_demo(
        workers=3, report=report_path, timeout=400, agent="script", work_dir=tmp_path / "demo"
    )
    assert code == 0, (tmp_path / "demo" / "bot.log").read_text()[-3000:]

    report = json.loads(report_path.read_text())
    events = json.loads((tmp_path / "demo" / "fakehub-events.json").read_text())
    tasks = {t["issue"]: t for t in report["tasks"]}
    assert len(tasks) == len(SPRINT)
    assert report["workers"] == 3
    # Agents really ran in parallel: at some moment at least two were working at once.
    spans = sorted(
        (t["dispatched_at"], t["dispatched_at"] + t["agent_seconds"]) for t in tasks.values()
    )
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), spans
    assert report["serial_s"] == pytest.approx(
        sum(t["agent_seconds"] for t in tasks.values()), abs=0.01
    )

    merges = {e["pr"]: e for e in events if e["type"] == "merge"}
    pr_of = {t["issue"]: t["pr"] for t in tasks.values()}
    assert all(pr_of[i] in merges for i in tasks), "every task's pull request merged"

    # Never merged red: every required check on the merged head had succeeded.
    for merge in merges.values():
        assert merge["checks"].get("ci") == "success", merge

    # Never dispatched before its blockers merged: the bot marks a task running when it hands it
    # to a runner, and the first push to its branch comes after that.
    running_at: dict[int, float] = {}
    for e in events:
        if e["type"] == "label_added" and e["label"] == "stoneforge:running":
            running_at.setdefault(e["issue"], e["at"])
    first_push: dict[int, float] = {}
    for e in events:
        if e["type"] == "push" and e["ref"].startswith("refs/heads/stoneforge/"):
            issue = int(e["ref"].removeprefix("refs/heads/stoneforge/").split("-", 1)[0])
            first_push.setdefault(issue, e["at"])
    for issue, task in tasks.items():
        for blocker in task["blocked_by"]:
            blocker_merged = merges[pr_of[blocker]]["at"]
            assert running_at[issue] >= blocker_merged, (issue, blocker)
            assert first_push[issue] > blocker_merged, (issue, blocker)
            assert merges[pr_of[issue]]["at"] > blocker_merged

    # The review round: the maintainer's "changes requested" sent the task back to its agent,
    # whose revision went to the same pull request, which merged only after the approval,
    # with the change the review asked for.
    (reviewed,) = [issue for issue in SPRINT if issue.review]
    number = next(i for i, t in tasks.items() if t["title"] == reviewed.title)
    reviews = [e for e in events if e["type"] == "review_submitted"]
    assert [(e["pr"], e["state"]) for e in reviews] == [
        (pr_of[number], "CHANGES_REQUESTED"),
        (pr_of[number], "APPROVED"),
    ]
    pushes = [
        e for e in events
        if e["type"] == "push" and e["ref"].startswith(f"refs/heads/stoneforge/{number}-")
    ]  # fmt: skip
    assert any(reviews[0]["at"] < e["at"] < reviews[1]["at"] for e in pushes), "a revision"
    assert merges[pr_of[number]]["at"] > reviews[1]["at"]
    assert len([e for e in events if e["type"] == "pr_opened" and e["pr"] == pr_of[number]]) == 1
    bare = tmp_path / "demo" / "fakehub" / "repos" / "octo" / "demo.git"  # fakehub's copy
    landed = subprocess.run(
        ["git", "--git-dir", str(bare), "show", "main:app/ratelimit.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "def retry_after(self, key: str) -> float:" in landed


def test_demo_timeout_writes_the_report_so_far_and_fails(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    code = run_demo(
        workers=1, report=report_path, timeout=4, agent="script", work_dir=tmp_path / "d"
    )
    assert code != 0
    report = json.loads(report_path.read_text())
    assert report["workers"] == 1
    assert report["makespan_s"] >= 4
    assert len(report["tasks"]) <= len(SPRINT)
    assert not all(t["merged_at"] for t in report["tasks"]) or len(report["tasks"]) < len(SPRINT)
