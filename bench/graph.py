"""Benchmark ``bot.core.graph.analyse`` on a large random task graph.

    python bench/graph.py [--tasks 10000] [--edges 30000] [--runs 9] [--json FILE]

Builds a random DAG with a fixed seed (every edge points from a later task to an earlier one),
marks one task merged, and times a full ``analyse`` (median of ``--runs``). Prints and writes
``{"tasks", "edges", "ready_ms", "rss_mb", ...}``. Target: ``ready_ms`` <= 50.
Also times the incremental ``ReadySet``: one build, then ``mark_done`` of one completion.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.graph import ReadySet, analyse  # noqa: E402
from bot.core.model import IssueRef, Task, TaskState  # noqa: E402

REPO = "bench/graph"


def build_tasks(n_tasks: int, n_edges: int, seed: int = 1234) -> list[Task]:
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = set()
    while len(edges) < n_edges:
        a, b = rng.randrange(1, n_tasks + 1), rng.randrange(1, n_tasks + 1)
        if a != b:
            edges.add((max(a, b), min(a, b)))  # later task blocked by earlier task
    blockers: dict[int, list[IssueRef]] = {}
    for dependent, blocker in sorted(edges):
        blockers.setdefault(dependent, []).append(IssueRef(REPO, blocker))
    tasks = [
        Task(
            repo=REPO,
            number=n,
            title=f"task {n}",
            blocked_by=tuple(blockers.get(n, ())),
            priority=rng.randrange(0, 5),
            created_at=float(n),
            state=TaskState.MERGED if n == 1 else TaskState.QUEUED,
        )
        for n in range(1, n_tasks + 1)
    ]
    return tasks


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)

    tasks = build_tasks(args.tasks, args.edges)
    analyse(tasks, {})  # warm up
    timings = []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = analyse(tasks, {})
        timings.append((time.perf_counter() - start) * 1000)
    # Incremental: build a ReadySet once, then time mark_done of the ready task with the most
    # tasks waiting on it (a fresh ReadySet per run, since mark_done changes it).
    build_ms, done_ms = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        ready_set = ReadySet(tasks, {})
        build_ms.append((time.perf_counter() - start) * 1000)
        busiest = max(ready_set.ready, key=lambda ref: report.chain.get(ref, 0))
        start = time.perf_counter()
        ready_set.mark_done(busiest)
        ready_set.ready  # noqa: B018 - include reading the new order
        done_ms.append((time.perf_counter() - start) * 1000)

    result: dict[str, float | int] = {
        "tasks": args.tasks,
        "edges": args.edges,
        "ready_ms": round(statistics.median(timings), 2),
        "ready_ms_min": round(min(timings), 2),
        "ready": len(report.ready),
        "incremental_build_ms": round(statistics.median(build_ms), 2),
        "incremental_mark_done_ms": round(statistics.median(done_ms), 3),
        "waiting": len(report.waiting),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    text = json.dumps(result)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
