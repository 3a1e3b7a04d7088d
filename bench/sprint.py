"""Benchmark dispatch over a sprint: makespan over its lower bound for after-merge, stacked and
FIFO dispatch, and how many pull requests conflict with and without file-aware scheduling.

    python bench/sprint.py --json FILE [--graphs 1] [--tasks 50] [--workers 3,8]
                           [--modes after_merge,stacked,fifo] [--ci-s 0.3] [--strict]

For each seeded random dependency graph (``bench/sprint_graph.py``: ``--tasks`` tasks, agent
times drawn from ``[--min-s, --max-s]``, one task in four appending to a shared file), each
``k`` of ``--workers`` and each mode, it runs the demo's pipeline (``demo.pipeline.Pipeline``:
fakehub in this process, the bot and one runner of ``k`` workers as real processes, the
``script`` agent, CI a check that takes ``--ci-s`` seconds): it files an epic whose body
carries the graph as a ``stoneforge-plan`` block, comments ``/stoneforge plan`` (the director's
plan job: the script agent writes that plan; the bot files it as draft sub-issues with their
"blocked by" links and expected files), waits for the draft and comments ``/stoneforge
approve``; then waits until every task merged. The modes differ only in
``.github/stoneforge.yml``'s ``scheduling``:

- ``after_merge``: ``dispatch: after_merge`` (a task starts once its blockers merged), dispatch
  order by critical path, ``file_aware: true``
- ``stacked``: the same with ``dispatch: stacked`` (a task starts on its one unmerged blocker's
  branch once that blocker's pull request is open)
- ``fifo``: ``dispatch: after_merge``, ``order: fifo`` and ``file_aware: false``: plain FIFO,
  the baseline

Each run's makespan runs from its first task's dispatch to its last merge; its lower bound is
``max(critical path including merge latency, total work / k)`` with the graph's agent times
and ``--ci-s`` as the merge latency (CI is the part of a merge no dispatch can avoid). The
ratios are makespan over that bound, the worst over the graphs and both ``k``:
``after_merge_ratio`` (target <= 1.15), ``stacked_ratio`` (below after-merge) and
``fifo_ratio``. ``conflict_rate_file_aware``: the tasks whose pull request conflicted with the
base at least once (dispatched again: a rebase or a fresh run) over all tasks, in the
``after_merge`` runs; ``conflict_rate_plain``: the same in the ``fifo`` runs (file-aware off).

Time is compressed: agents take seconds where real ones take minutes, so GitHub's limits on
content-creating requests (80 a minute, 500 an hour, which the bot paces itself under) are
multiplied by ``--time-scale`` (30); at 1, a 50-task sprint's filing, status comments and pull
requests (about 250 writes) alone take over three minutes and swamp what is measured
(``bench/plan.py`` measures filing under the real limits).

The base branch does not require pull requests to be up to date unless ``--strict``: with it,
every merge waits for a branch update and a CI run behind the one before, so 50 merges take
50 CI cycles in a row whatever the dispatch does; the lower bound leaves that queue out
(``bench/merge.py`` measures it). Each run also reports its profile: merge latency (last push
to merge), dispatch latency (last blocker merged, or blocker pushed when stacked, to dispatch)
and the workers' idle share (no task job between its start and its result).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sprint_graph import Node, describe, lower_bound, make_graph, repo_files  # noqa: E402
from demo.pipeline import Pipeline  # noqa: E402
from demo.sample import PLAN_INFO_STRING, script_block  # noqa: E402

DRAFT_LABEL = "stoneforge:draft"
PLAN_MARKER = "<!-- stoneforge:plan "
MODES = {
    "after_merge": "file_aware: true\n  dispatch: after_merge\n  order: critical_path",
    "stacked": "file_aware: true\n  dispatch: stacked\n  order: critical_path",
    "fifo": "file_aware: false\n  dispatch: after_merge\n  order: fifo",
}
CONFIG = "version: 1\nconcurrency:\n  per_repo: 100\nscheduling:\n  {scheduling}\n"


def make_plan(nodes: list[Node]) -> dict[str, Any]:
    """The ``stoneforge-plan`` block's JSON for ``nodes``."""
    planned = []
    for n in nodes:
        title = f"Task {n.index}: {'extend' if n.shared else 'add'} {n.path}"
        edit = {"append": f"task {n.index} was here\n"} if n.shared else {"write": f"{n.index}\n"}
        script = {"sleep": n.seconds, "edits": [{"path": n.path, **edit}], "summary": title}
        planned.append({"title": title, "body": f"{title}.\n\n{script_block(script)}\n",
                        "acceptance_criteria": [f"{n.path} has the line"],
                        "blockers": list(n.blockers), "priority": 2, "files": list(n.files),
                        "size": "xs"})  # fmt: skip
    return {"summary": "A sprint of dependent tasks, some sharing a file.",
            "notes": ["Tasks that share a file append to its end."], "tasks": planned}  # fmt: skip


def run_once(nodes: list[Node], k: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(nodes)
    repo = repo_files(nodes)
    repo[".github/stoneforge.yml"] = CONFIG.format(scheduling=MODES[mode])
    work = Path(tempfile.mkdtemp(prefix=f"bench-sprint-{mode}-{k}-"))
    ci = f"import time; time.sleep({args.ci_s})"
    pipe = Pipeline(work=work, workers=k, agent="script", sprint=(), repo_files=repo,
                    ci_command=[sys.executable, "-I", "-S", "-c", ci], strict=args.strict,
                    extra_env=_env(args))  # fmt: skip
    deadline = time.time() + args.timeout
    try:
        pipe.start()
        body = "Bench sprint.\n\n```" + PLAN_INFO_STRING + "\n" + json.dumps(plan) + "\n```\n"
        epic = pipe.file_issue("Epic: bench sprint", body)
        pipe.comment(epic, "/stoneforge plan")
        _wait_for_draft(pipe, epic, len(nodes), deadline)
        approved = time.time()
        pipe.comment(epic, "/stoneforge approve")
        tasks = _wait_merged(pipe, len(nodes), deadline)
        return _measure(pipe, nodes, tasks, approved, k, mode, args)
    finally:
        if args.keep:  # fakehub's record, for a closer look at the run
            (work / "hub-events.json").write_text(json.dumps(pipe.hub.events(), default=str))
        pipe.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _env(args: argparse.Namespace) -> dict[str, str]:
    return {
        "STONEFORGE_LOG_FORMAT": "json",
        "STONEFORGE_GITHUB_WRITES_PER_MINUTE": str(80 * args.time_scale),
        "STONEFORGE_GITHUB_WRITES_PER_HOUR": str(500 * args.time_scale),
    }


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
        time.sleep(0.2)
    return tasks


def _measure(
    pipe: Pipeline,
    nodes: list[Node],
    tasks: list[dict[str, Any]],
    approved: float,
    k: int,
    mode: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    started: dict[int, list[float]] = {}
    for rec in _log(pipe.work / "bot.log"):
        if rec.get("event") == "task_dispatched" and rec.get("issue") is not None:
            started.setdefault(int(rec["issue"]), []).append(_epoch(rec["ts"]))
    pushes: dict[str, list[float]] = {}  # a job ends by pushing its task's branch
    for event in pipe.hub.events("push"):
        pushes.setdefault(str(event["ref"]).removeprefix("refs/heads/"), []).append(event["at"])
    node_of = {int(t["issue"]): nodes[int(t["planned_index"])] for t in tasks}
    issue_of = {node.index: issue for issue, node in node_of.items()}
    merged = [t for t in tasks if t["state"] == "merged" and t.get("merged_at")]
    merged_at = {int(t["issue"]): float(t["merged_at"]) for t in merged}
    first = min((min(v) for v in started.values() if v), default=approved)
    last = max(merged_at.values(), default=time.time())
    makespan = last - first
    bound = lower_bound(nodes, k, args.ci_s)
    conflicted = sum(1 for t in tasks if len(started.get(int(t["issue"]), ())) > 1)
    busy = _busy(pipe.work / "runner.log")
    merge_lat, dispatch_lat = [], []
    for t in tasks:
        issue, branch = int(t["issue"]), str(t["branch"])
        own = sorted(pushes.get(branch, ()))
        if issue in merged_at and own:
            merge_lat.append(merged_at[issue] - max(p for p in own if p < merged_at[issue]))
        blockers = [issue_of[b] for b in node_of[issue].blockers]
        if blockers and started.get(issue):
            ready = max(merged_at.get(b, 0.0) for b in blockers)
            if mode == "stacked":  # ready once the last blocker to go pushed, at the latest
                ready = min(
                    ready, max(min(pushes.get(_branch(tasks, b), [ready])) for b in blockers)
                )
            dispatch_lat.append(min(started[issue]) - ready)
    return {
        "mode": mode,
        "workers": k,
        "tasks": len(tasks),
        "all_merged": len(merged) == len(nodes) == len(tasks),
        "makespan_s": round(makespan, 2),
        **bound,
        "ratio": round(makespan / bound["lower_bound_s"], 3),
        "conflicted": conflicted,
        "conflict_rate": round(conflicted / len(tasks), 3) if tasks else None,
        "first_dispatch_after_approve_s": round(first - approved, 2),
        "profile": {
            "merge_latency_s": _stats(merge_lat),
            "dispatch_latency_s": _stats(dispatch_lat),
            "idle_share": round(1 - busy / (k * makespan), 3) if makespan > 0 else None,
        },
    }


def _busy(runner_log: Path) -> float:
    """Worker-seconds spent on task jobs: each job's start (worktree made) to its result sent."""
    begun: dict[str, float] = {}
    busy = 0.0
    for rec in _log(runner_log):
        words = str(rec.get("event", "")).split()
        job = next((w.removeprefix("job=") for w in words if w.startswith("job=")), None)
        if job is None or "@plan-" in job:
            continue
        if words[0] == "job_started":
            begun[job] = _epoch(rec["ts"])
        elif words[0] == "result_sent" and job in begun:
            busy += _epoch(rec["ts"]) - begun.pop(job)
    return busy


def _branch(tasks: list[dict[str, Any]], issue: int) -> str:
    return next(str(t["branch"]) for t in tasks if int(t["issue"]) == issue)


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": round(statistics.median(values), 2), "max": round(max(values), 2),
            "mean": round(statistics.fmean(values), 2)}  # fmt: skip


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


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures over every run: each mode's worst ratio, the conflict rates."""
    out: dict[str, Any] = {}
    for mode in MODES:
        ratios = [r["ratio"] for r in runs if r["mode"] == mode]
        out[f"{mode}_ratio"] = max(ratios) if ratios else None
    for name, mode in (("file_aware", "after_merge"), ("plain", "fifo")):
        mine = [r for r in runs if r["mode"] == mode]
        tasks = sum(r["tasks"] for r in mine)
        conflicted = sum(r["conflicted"] for r in mine)
        out[f"conflict_rate_{name}"] = round(conflicted / tasks, 3) if tasks else None
    out["all_merged"] = all(r["all_merged"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--graphs", type=int, default=1, help="random graphs (seeds 1..N)")
    parser.add_argument("--tasks", type=int, default=50, help="tasks per graph")
    parser.add_argument("--workers", default="3,8", help="values of k, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help="modes, comma-separated")
    parser.add_argument("--min-s", type=float, default=2.0, help="shortest agent time")
    parser.add_argument("--max-s", type=float, default=6.0, help="longest agent time")
    parser.add_argument("--ci-s", type=float, default=0.3, help="each CI run's seconds")
    parser.add_argument("--strict", action="store_true", help="require up-to-date branches")
    parser.add_argument("--time-scale", type=int, default=30, help="GitHub's write limits x")
    parser.add_argument("--timeout", type=float, default=300.0, help="per run, in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    graphs = []
    for seed in range(1, args.graphs + 1):
        nodes = make_graph(seed, args.tasks, min_s=args.min_s, max_s=args.max_s)
        graphs.append({"seed": seed, **describe(nodes)})
        for k in (int(w) for w in args.workers.split(",")):
            for mode in args.modes.split(","):
                run = {"seed": seed, **run_once(nodes, k, mode, args)}
                print(json.dumps(run), file=sys.stderr)
                runs.append(run)
    result = {**summarise(runs), "ci_s": args.ci_s, "strict": args.strict,
              "time_scale": args.time_scale,
              "agent_s": [args.min_s, args.max_s], "graphs": graphs, "runs": runs}  # fmt: skip
    text = json.dumps(result, indent=2)
    args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
