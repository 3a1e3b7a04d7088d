"""``stoneforge demo --plan``: one epic issue becomes a plan, and the plan runs to completion.

The maintainer files the sample epic (``demo.sample.PLAN_EPIC``) and comments
``/stoneforge plan``; the director's plan job (the ``script`` agent writes the plan the epic
carries) is filed as draft sub-issues with their dependencies; the maintainer comments
``/stoneforge approve``; every task runs, in dependency order, until the epic is closed with
its summary. Like ``demo.run`` it drives fakehub only as a maintainer would (REST), and reads
the bot only through its read-only ``/api/tasks``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from demo.pipeline import Pipeline
from demo.sample import PLAN_EPIC
from demo.view import Narrator, status_table

DRAFT_LABEL = "stoneforge:draft"
PLAN_MARKER = "<!-- stoneforge:plan "


def run_plan_demo(
    *,
    workers: int = 3,
    report: Path | None = None,
    timeout: float = 600.0,
    agent: str = "script",
    work_dir: Path | None = None,
    runner_env: dict[str, str] | None = None,
) -> int:
    console = Console()
    own_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="stoneforge-plan-demo-")) if own_dir else work_dir
    assert work is not None
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(work=work, workers=workers, agent=agent, runner_env=runner_env, sprint=())
    started = time.time()
    code = 1
    tasks: list[dict[str, Any]] = []
    outcome = "timeout"
    epic = 0
    try:
        console.print(f"[bold]Stoneforge demo --plan[/] · files in {work}")
        pipe.start()
        epic = pipe.file_issue(PLAN_EPIC.title, PLAN_EPIC.body)
        pipe.comment(epic, "/stoneforge plan")
        console.print(f"filed the epic #{epic} and commented /stoneforge plan")
        drafted = _wait_for_draft(pipe, epic, len(PLAN_EPIC.plan["tasks"]), started + timeout)
        if drafted is None:
            outcome = pipe.crashed() or "the plan was not filed"
        else:
            console.print(
                f"the director filed {len(drafted)} draft sub-issues: "
                + ", ".join(f"#{n}" for n in drafted)
            )
            pipe.comment(epic, "/stoneforge approve")
            console.print("commented /stoneforge approve")
            outcome, tasks = _run_until_closed(pipe, epic, started, timeout, console)
        makespan = time.time() - started
        if outcome == "completed":
            console.print(
                f"[green]all {len(tasks)} tasks of the plan merged in dependency order; "
                f"epic #{epic} closed as completed[/] in {makespan:.1f} s"
            )
            code = 0
        else:
            console.print(f"[red]demo --plan did not finish: {outcome}[/]")
            for t in tasks:
                if t["state"] != "merged":
                    console.print(f"  #{t['issue']} {t['state']}: {t.get('detail') or ''}")
        if report:
            write_plan_report(report, epic, tasks, makespan, workers, _epic_story(pipe, epic))
        (work / "fakehub-events.json").write_text(
            json.dumps(pipe.hub.events(), indent=1, default=str)
        )
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        code = 130
    finally:
        pipe.stop()
        if own_dir and code == 0:
            shutil.rmtree(work, ignore_errors=True)
    return code


def _wait_for_draft(pipe: Pipeline, epic: int, count: int, deadline: float) -> list[int] | None:
    """The draft's issue numbers once all ``count`` are sub-issues of the epic and its plan
    comment is up; None at the deadline or when a process died."""
    while time.time() < deadline:
        if pipe.crashed():
            return None
        subs = [s for s in pipe.sub_issues(epic) if DRAFT_LABEL in _labels(s)]
        planned = any(PLAN_MARKER in (c.get("body") or "") for c in pipe.comments(epic))
        if len(subs) >= count and planned:
            return sorted(int(s["number"]) for s in subs)
        time.sleep(0.5)
    return None


def _run_until_closed(
    pipe: Pipeline, epic: int, started: float, timeout: float, console: Console
) -> tuple[str, list[dict[str, Any]]]:
    tasks: list[dict[str, Any]] = []
    with Live(status_table(pipe, tasks, started), console=console, refresh_per_second=4) as live:
        narrator = Narrator(pipe, started)
        while time.time() - started < timeout:
            tasks = [t for t in pipe.tasks() if t.get("plan_id")] or tasks
            for line in narrator.lines(tasks):
                live.console.print(line)
            live.update(status_table(pipe, tasks, started))
            if tasks and all(t["state"] == "merged" for t in tasks):
                issue = pipe.issue(epic)
                if issue["state"] == "closed" and issue.get("state_reason") == "completed":
                    return "completed", tasks
            if any(t["state"] in ("failed", "cancelled") for t in tasks):
                return "failed", tasks
            if crash := pipe.crashed():
                return crash, tasks
            time.sleep(0.5)
    return "timeout", tasks


def _epic_story(pipe: Pipeline, epic: int) -> dict[str, Any]:
    """The epic as the maintainer sees it at the end: its state and the bot's comments."""
    if not epic:
        return {}
    issue = pipe.issue(epic)
    bodies = [str(c.get("body") or "") for c in pipe.comments(epic)]
    return {
        "state": issue.get("state"),
        "state_reason": issue.get("state_reason"),
        "plan_comment": next((b for b in bodies if PLAN_MARKER in b), None),
        "comments": bodies,
    }


def _labels(issue: dict[str, Any]) -> set[str]:
    return {str(label.get("name")) for label in issue.get("labels") or []}


def write_plan_report(
    path: Path,
    epic: int,
    tasks: list[dict[str, Any]],
    makespan: float,
    workers: int,
    story: dict[str, Any] | None = None,
) -> None:
    rows = [
        {
            "issue": t["issue"],
            "title": t["title"],
            "planned_index": t.get("planned_index"),
            "blocked_by": [int(b.rsplit("#", 1)[1]) for b in t["blocked_by"]],
            "dispatched_at": t.get("dispatched_at"),
            "pr": t.get("pr"),
            "merged_at": t.get("merged_at"),
            "merge_sha": t.get("merge_sha"),
        }
        for t in sorted(tasks, key=lambda t: t.get("planned_index") or 0)
    ]
    plan_ids = sorted({str(t.get("plan_id")) for t in tasks if t.get("plan_id")})
    data = {
        "plan_id": plan_ids[0] if len(plan_ids) == 1 else plan_ids,
        "epic": epic,
        "epic_story": story or {},
        "tasks": rows,
        "makespan_s": round(makespan, 3),
        "workers": workers,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
