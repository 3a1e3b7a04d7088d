"""Benchmark file-aware scheduling: how many pull requests of a sprint conflict at merge, with
``scheduling.file_aware`` on and off.

    python bench/sprint.py --json FILE [--tasks 12] [--workers 3] [--group 3] [--sleep 1.5]

Runs the demo's pipeline (``demo.pipeline.Pipeline``: fakehub in this process, the bot and one
runner as real processes, the ``script`` agent) twice, once per setting of
``scheduling.file_aware`` in ``.github/stoneforge.yml``; everything else is the same. Each run
files one epic whose body carries a ``stoneforge-plan`` block, comments ``/stoneforge plan`` (the
director's plan job: the script agent writes that plan, and the director files it as draft
sub-issues, each with its expected ``files``), waits for the draft and comments
``/stoneforge approve``.

The plan is ``--tasks`` independent tasks (no blockers). Three in four of them come in groups of
``--group`` adjacent tasks (in dispatch order) that each append a line to the end of one shared
file, ``areas/<group>.txt``: two of a group in flight at once conflict at merge (both add lines
at the same place), and a conflicted task starts again from the new base, where its append
applies cleanly. The others each write a file of their own. Every agent sleeps ``--sleep``
seconds. CI is GitHub's as the bot sees it (a green ``ci`` check per commit, computed by a no-op
command, as ``bench/dispatch.py --ci remote``); the steward merges each pull request.

Per setting it reports: ``tasks``; ``conflicted``, the tasks whose pull request conflicted with
the base at least once (the steward sent the task back to an agent: it was dispatched more
than once, from the bot's JSON log); ``redispatches`` in all; ``conflict_rate`` (conflicted /
tasks); ``makespan_s`` from ``/stoneforge approve`` to the last merge; ``all_merged``; and
``same_file_in_flight_max``, the most tasks of one group that were running at the same time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.pipeline import Pipeline  # noqa: E402
from demo.sample import PLAN_INFO_STRING, script_block  # noqa: E402

DRAFT_LABEL = "stoneforge:draft"
PLAN_MARKER = "<!-- stoneforge:plan "
CONFIG = "version: 1\nconcurrency:\n  per_repo: 100\nscheduling:\n  file_aware: {on}\n"


def make_plan(tasks: int, group: int, sleep: float) -> tuple[dict[str, Any], dict[str, str]]:
    """The plan (the ``stoneforge-plan`` block's JSON) and the files it needs on ``main``."""
    groups = (tasks * 3 // 4) // group
    planned: list[dict[str, Any]] = []
    repo: dict[str, str] = {}
    for g in range(groups):
        path = f"areas/area-{g}.txt"
        repo[path] = f"Area {g}: one line per task.\n"
        for k in range(group):
            text = f"task {g}.{k} was here\n"
            planned.append(_task(f"Extend area {g}, part {k}", path, {"append": text}, sleep))
    for s in range(tasks - groups * group):
        path = f"solo/solo-{s}.txt"
        planned.append(_task(f"Add solo part {s}", path, {"write": f"solo {s}\n"}, sleep))
    plan = {"summary": "A sprint of independent tasks, some of which share a file.",
            "notes": ["Tasks that share a file append to its end."], "tasks": planned}  # fmt: skip
    return plan, repo


def _task(title: str, path: str, edit: dict[str, str], sleep: float) -> dict[str, Any]:
    script = {"sleep": sleep, "edits": [{"path": path, **edit}], "summary": title}
    return {"title": title, "body": f"{title}.\n\n{script_block(script)}\n",
            "acceptance_criteria": [f"{path} has the line"], "blockers": [], "priority": 2,
            "files": [path], "size": "xs"}  # fmt: skip


def run_once(file_aware: bool, args: argparse.Namespace) -> dict[str, Any]:
    plan, repo = make_plan(args.tasks, args.group, args.sleep)
    repo[".github/stoneforge.yml"] = CONFIG.format(on="true" if file_aware else "false")
    work = Path(tempfile.mkdtemp(prefix="bench-sprint-"))
    pipe = Pipeline(
        work=work,
        workers=args.workers,
        agent="script",
        sprint=(),
        repo_files=repo,
        ci_command=[sys.executable, "-I", "-S", "-c", "pass"],
        extra_env={"STONEFORGE_LOG_FORMAT": "json"},
    )
    deadline = time.time() + args.timeout
    try:
        pipe.start()
        body = "Bench sprint.\n\n```" + PLAN_INFO_STRING + "\n" + json.dumps(plan) + "\n```\n"
        epic = pipe.file_issue("Epic: bench sprint", body)
        pipe.comment(epic, "/stoneforge plan")
        _wait_for_draft(pipe, epic, len(plan["tasks"]), deadline)
        approved = time.time()
        pipe.comment(epic, "/stoneforge approve")
        tasks = _wait_merged(pipe, len(plan["tasks"]), deadline)
        return _measure(pipe, plan, tasks, approved, file_aware, args)
    finally:
        pipe.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _wait_for_draft(pipe: Pipeline, epic: int, count: int, deadline: float) -> None:
    while time.time() < deadline:
        if crash := pipe.crashed():
            raise RuntimeError(crash)
        drafted = [s for s in pipe.sub_issues(epic) if DRAFT_LABEL in _labels(s)]
        planned = any(PLAN_MARKER in (c.get("body") or "") for c in pipe.comments(epic))
        if len(drafted) >= count and planned:
            return
        time.sleep(0.3)
    raise RuntimeError("the plan was not filed in time")


def _wait_merged(pipe: Pipeline, count: int, deadline: float) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    while time.time() < deadline:
        tasks = [t for t in pipe.tasks() if t.get("plan_id")] or tasks
        if len(tasks) == count and all(t["state"] == "merged" for t in tasks):
            return tasks
        if any(t["state"] in ("failed", "cancelled") for t in tasks) or pipe.crashed():
            return tasks
        time.sleep(0.3)
    return tasks


def _measure(
    pipe: Pipeline,
    plan: dict[str, Any],
    tasks: list[dict[str, Any]],
    approved: float,
    file_aware: bool,
    args: argparse.Namespace,
) -> dict[str, Any]:
    dispatches: Counter[int] = Counter()
    started: dict[int, list[float]] = {}
    for rec in _log(pipe.work / "bot.log"):
        if rec.get("event") == "task_dispatched" and rec.get("issue") is not None:
            dispatches[int(rec["issue"])] += 1
            started.setdefault(int(rec["issue"]), []).append(_epoch(rec["ts"]))
    pushes: dict[str, list[float]] = {}  # a job ends by pushing its task's branch
    for event in pipe.hub.events("push"):
        pushes.setdefault(str(event["ref"]).removeprefix("refs/heads/"), []).append(event["at"])
    ended = {
        int(t["issue"]): [
            min((p for p in pushes.get(str(t["branch"]), ()) if p > begin), default=begin)
            for begin in started.get(int(t["issue"]), ())
        ]
        for t in tasks
    }
    by_path: dict[str, list[int]] = {}
    for t in tasks:
        for path in plan["tasks"][int(t["planned_index"])]["files"]:
            by_path.setdefault(path, []).append(int(t["issue"]))
    shared = {p: issues for p, issues in by_path.items() if len(issues) > 1}
    merged = [t for t in tasks if t["state"] == "merged"]
    redispatches = sum(max(0, dispatches[int(t["issue"])] - 1) for t in tasks)
    conflicted = sum(1 for t in tasks if dispatches[int(t["issue"])] > 1)
    last = max((float(t["merged_at"]) for t in merged if t.get("merged_at")), default=time.time())
    return {
        "file_aware": file_aware,
        "tasks": len(tasks),
        "conflicted": conflicted,
        "redispatches": redispatches,
        "conflict_rate": round(conflicted / len(tasks), 3) if tasks else None,
        "makespan_s": round(last - approved, 1),
        "all_merged": len(tasks) == args.tasks and len(merged) == len(tasks),
        "tasks_sharing_a_file": sum(len(v) for v in shared.values()),
        "same_file_in_flight_max": max(
            (_in_flight(issues, started, ended) for issues in shared.values()), default=0
        ),
    }


def _in_flight(
    issues: list[int], started: dict[int, list[float]], ended: dict[int, list[float]]
) -> int:
    """The most of ``issues`` whose jobs ran at the same time (dispatched -> branch pushed)."""
    marks: list[tuple[float, int]] = []
    for n in issues:
        for begin, end in zip(started.get(n, []), ended.get(n, []), strict=False):
            marks += [(begin, 1), (end, -1)]
    peak = level = 0
    for _, step in sorted(marks):
        level += step
        peak = max(peak, level)
    return peak


def _log(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _labels(issue: dict[str, Any]) -> set[str]:
    return {str(label.get("name")) for label in issue.get("labels") or []}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--tasks", type=int, default=12, help="tasks in the sprint")
    parser.add_argument("--workers", type=int, default=3, help="runner workers")
    parser.add_argument("--group", type=int, default=3, help="tasks sharing one file")
    parser.add_argument("--sleep", type=float, default=1.5, help="each agent's seconds")
    parser.add_argument("--timeout", type=float, default=180.0, help="per run, in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args(argv)
    on = run_once(True, args)
    off = run_once(False, args)
    result = {"workers": args.workers, "group": args.group, "sleep_s": args.sleep,
              "file_aware_on": on, "file_aware_off": off}  # fmt: skip
    text = json.dumps(result, indent=2)
    args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
