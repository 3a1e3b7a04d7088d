"""The demo end to end: every task merges, never before its blockers, never with a red check.

Asserted from fakehub's own record of events, not from what the bot says about itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from demo.run import run_demo
from demo.sample import CONFLICTING, SPRINT

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

    # The conflict scene: two tasks add their line to the changelog at the same place. The one
    # merged second conflicted; the steward rebased it and an agent resolved the conflict on
    # the same pull request (no fresh run, no person), keeping both lines.
    ((a, b, path),) = CONFLICTING
    first, second = sorted((a, b), key=lambda key: merges[pr_of[number_of(tasks, key)]]["at"])
    later = number_of(tasks, second)
    first_merged = merges[pr_of[number_of(tasks, first)]]["at"]
    assert [e for e in pushes_to(events, later) if e["at"] > first_merged], "a rebased push"
    assert len([e for e in events if e["type"] == "pr_opened" and e["pr"] == pr_of[later]]) == 1
    changelog = show(bare, f"main:{path}")
    for key in (a, b):
        entry = next(line for line in added(key, path))
        assert changelog.count(entry) == 1, (key, changelog)

    # The red check scene: the logging task's first push failed CI; the steward re-ran it once,
    # then sent it back to its agent with the output, which fixed it on the same pull request.
    fixed = number_of(tasks, "logging")
    heads = {e["after"] for e in pushes_to(events, fixed)}
    red = [e for e in events if e["type"] == "check_completed" and e["sha"] in heads
           and e["name"] == "ci" and e["conclusion"] == "failure"]  # fmt: skip
    assert red
    assert [e for e in events if e["type"] == "check_rerequested" and e["sha"] in heads]
    assert [e for e in pushes_to(events, fixed) if e["at"] > red[0]["at"]], "the fix was pushed"
    assert merges[pr_of[fixed]]["checks"]["ci"] == "success"
    assert "(client %s)" in show(bare, "main:app/api.py")


def number_of(tasks: dict[int, dict[str, object]], key: str) -> int:
    title = next(issue.title for issue in SPRINT if issue.key == key)
    return next(i for i, t in tasks.items() if t["title"] == title)


def pushes_to(events: list[dict[str, object]], issue: int) -> list[dict[str, object]]:
    prefix = f"refs/heads/stoneforge/{issue}-"
    return [e for e in events if e["type"] == "push" and str(e["ref"]).startswith(prefix)]


def added(key: str, path: str) -> list[str]:
    """The changelog lines a sprint issue's script adds."""
    (issue,) = [i for i in SPRINT if i.key == key]
    out = []
    for edit in issue.script["edits"]:
        if edit["path"] == path and "replace" in edit:
            old, new = edit["replace"]
            out += [x for x in new.splitlines() if x.strip() and x not in old]
    return out


def show(bare: Path, spec: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(bare), "show", spec], capture_output=True, text=True, check=True
    ).stdout


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
