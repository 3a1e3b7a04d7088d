"""For tests that run the demo's own pipeline (``demo.pipeline.Pipeline``: fakehub in this
process, the bot and runners as processes): wait for the sprint, check the order it merged in."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from demo.pipeline import Pipeline
from tests.harness.waiting import WaitTimeout, hub_changes, wait_until

RUNNING = "stoneforge:running"


def log_tails(work: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n" + log.read_text(errors="replace")[-2500:]
        for log in sorted(work.glob("*.log"))
    )


def wait_merged(pipe: Pipeline, timeout: float) -> dict[int, dict[str, Any]]:
    """Every task of ``pipe``'s sprint, once all merged; fails fast on a failed task or an
    exited process. Woken by each merge fakehub records, and every 0.5 s for the rest (the bot's
    view is another process's: asking it more often would slow the sprint it waits for)."""
    seen: dict[int, dict[str, Any]] = {}

    def merged() -> dict[int, dict[str, Any]] | None:
        tasks = {t["issue"]: t for t in pipe.tasks()} or seen
        seen.clear()
        seen.update(tasks)
        bad = {n: (t["state"], t["detail"]) for n, t in tasks.items() if t["state"] == "failed"}
        dead = [p.args for p in pipe.procs if p.poll() is not None]
        if bad or dead:
            raise AssertionError(f"failed tasks {bad}, exited {dead}\n{log_tails(pipe.work)}")
        done = len(tasks) == len(pipe.sprint) and all(
            t["state"] == "merged" for t in tasks.values()
        )
        return tasks if done else None

    try:
        merges = hub_changes(pipe.hub, "merge")
        return wait_until(merged, timeout, "the sprint to merge", woken_by=merges, poll=0.5)
    except WaitTimeout as exc:
        states = {n: (t["state"], t["attempt"]) for n, t in seen.items()}
        raise AssertionError(f"{exc}: {states}\n{log_tails(pipe.work)}") from None


def assert_merged_in_dependency_order(
    events: list[dict[str, Any]], tasks: dict[int, dict[str, Any]]
) -> None:
    """Every task's PR merged green, and no task was dispatched before its blockers merged."""
    merges = {e["pr"]: e for e in events if e["type"] == "merge"}
    pr_of = {issue: t["pr"] for issue, t in tasks.items()}
    assert all(pr_of[i] in merges for i in tasks), "every task's pull request merged"
    for merge in merges.values():
        assert merge["checks"].get("ci") == "success", merge
    running_at: dict[int, float] = {}
    for e in events:
        if e["type"] == "label_added" and e["label"] == RUNNING:
            running_at.setdefault(e["issue"], e["at"])
    first_push: dict[int, float] = {}
    for e in events:
        if e["type"] == "push" and e["ref"].startswith("refs/heads/stoneforge/"):
            issue = int(e["ref"].removeprefix("refs/heads/stoneforge/").split("-", 1)[0])
            first_push.setdefault(issue, e["at"])
    for issue, task in tasks.items():
        assert task["blocked_by"] or issue in running_at, issue
        for blocker in task["blocked_by"]:
            number = int(blocker.rsplit("#", 1)[1])
            blocker_merged = merges[pr_of[number]]["at"]
            assert running_at[issue] >= blocker_merged, (issue, number)
            assert first_push[issue] > blocker_merged, (issue, number)
            assert merges[pr_of[issue]]["at"] > blocker_merged, (issue, number)


#: every kind of job a task's runner starts (bot.core.protocol.JobKind, but plan)
ALL_KINDS = ("implement", "revise", "fix_checks", "rebase", "resolve_conflicts", "review")


def jobs_started(work: Path, kinds: tuple[str, ...] = ("implement",)) -> Counter[str]:
    """The runners' own record: agent jobs of ``kinds`` started per task, from their logs (by
    default the implementations: a steward's round, such as a fix_checks job after red CI, is
    not a second dispatch of the task).

    A second dispatch can leave no trace on fakehub (the "running" label is already there, an
    identical commit pushes nothing, a second pull request for the head is refused).
    """
    pattern = r"job_started worker=\S+ job=(\S+) branch=\S+ kind=(\w+)"
    return Counter(
        match.group(1).rsplit("@", 1)[0]
        for log in work.glob("runner*.log")
        for match in re.finditer(pattern, log.read_text())
        if match.group(2) in kinds
    )
