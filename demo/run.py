"""``stoneforge demo``: the whole pipeline on one machine, with no credentials.

Starts the :class:`~demo.pipeline.Pipeline` (fakehub, the bot, a runner), files the sprint,
labels it ``agent-ready`` and shows the pipeline working (``demo.view``) until every task has
merged, then prints ``main``'s history and the wall-clock time against the agents' summed time.
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
from demo.sample import SPRINT, SprintIssue
from demo.view import Narrator, Reviewer, status_table, write_report
from fakehub.delivery import Faults


def run_demo(
    *,
    workers: int = 3,
    report: Path | None = None,
    timeout: float = 600.0,
    agent: str = "script",
    work_dir: Path | None = None,
    webhook_faults: Faults | None = None,
    database_url: str | None = None,
    bots: int = 1,
    extra_env: dict[str, str] | None = None,
    runner_env: dict[str, str] | None = None,
    sprint: tuple[SprintIssue, ...] | None = None,
) -> int:
    console = Console()
    own_dir = work_dir is None
    work = (
        Path(tempfile.mkdtemp(prefix="stoneforge-demo-"))
        if work_dir is None
        else work_dir.resolve()
    )
    work.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(
        work=work,
        workers=workers,
        agent=agent,
        webhook_faults=webhook_faults,
        database_url=database_url,
        bots=bots,
        extra_env=extra_env,
        runner_env=runner_env,
        sprint=SPRINT if sprint is None else tuple(sprint),
    )
    started = time.time()
    code = 1
    tasks: list[dict[str, Any]] = []
    reviewer: Reviewer | None = None
    try:
        console.print(f"[bold]Stoneforge demo[/] · files in {work}")
        pipe.start()
        console.print(
            f"fakehub at {pipe.hub.url} · bot at {pipe.bot_url} · "
            f"runner with {workers} workers · agent [bold]{agent}[/]"
        )
        pipe.file_sprint()
        console.print(f"filed {len(pipe.sprint)} issues and labeled them agent-ready")
        reviewer = Reviewer(pipe)
        reviewer.start()
        outcome = "timeout"
        with Live(
            status_table(pipe, tasks, started),
            console=console,
            refresh_per_second=4,
            transient=False,
        ) as live:
            narrator = Narrator(pipe, started)
            while time.time() - started < timeout:
                tasks = pipe.tasks() or tasks
                for line in narrator.lines(tasks):
                    live.console.print(line)
                live.update(status_table(pipe, tasks, started))
                if len(tasks) == len(pipe.sprint) and all(t["state"] == "merged" for t in tasks):
                    outcome = "merged"
                    break
                if any(t["state"] in ("failed", "cancelled") for t in tasks):
                    outcome = "failed"
                    break
                crash = pipe.crashed() or reviewer.error
                if crash:
                    outcome = crash
                    break
                time.sleep(0.5)
        makespan = time.time() - started
        serial = sum(float(t.get("agent_seconds") or 0) for t in tasks)
        console.print("\n[bold]main after the sprint[/] (git log --oneline):")
        console.print(pipe.git_log().rstrip())
        console.print(
            f"\nwall clock {makespan:.1f} s · agents' time {serial:.1f} s "
            f"({serial / makespan if makespan else 0:.1f}x parallel speed-up of agent work)"
        )
        if outcome == "merged":
            console.print(f"[green]all {len(tasks)} tasks merged in dependency order[/]")
            code = 0
        else:
            console.print(f"[red]demo did not finish: {outcome}[/]")
            for t in tasks:
                if t["state"] != "merged":
                    console.print(f"  #{t['issue']} {t['state']}: {t.get('detail') or ''}")
        if report:
            write_report(report, pipe, tasks, makespan, serial, workers)
        (work / "fakehub-events.json").write_text(
            json.dumps(pipe.hub.events(), indent=1, default=str)
        )
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        code = 130
    finally:
        if reviewer is not None:
            reviewer.stop()
        pipe.stop()
        if own_dir and code == 0:
            shutil.rmtree(work, ignore_errors=True)
    return code
