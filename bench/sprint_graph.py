"""The sprint benchmark's graphs and its measures, apart from the run (``bench/sprint.py``).

``make_graph(seed)``: a seeded random dependency graph of tasks. Task ``i`` is blocked by up to
two of the ten tasks before it (none with probability 0.35, one with 0.45, two with 0.2), so
chains form and fan in and out; each task's agent sleeps a time drawn uniformly from
``[min_s, max_s]``. One task in four appends a line to one of ``areas`` shared files (two of
those in flight at once conflict at merge, as in a real sprint); every other writes a file of
its own. Each task's ``files`` are the plan's expected files (file-aware scheduling reads them).

``lower_bound``: ``max(critical path, total work / k)``, where the critical path is the
longest chain of tasks counting each task's agent time plus ``merge_s`` (a blocker's pull
request must pass CI and merge before its dependent may start, with after-merge dispatch).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Node:
    index: int
    blockers: tuple[int, ...]
    seconds: float
    path: str
    shared: bool  # appends to a shared file (may conflict) rather than writing its own
    files: tuple[str, ...] = field(default=())


def make_graph(
    seed: int, tasks: int = 50, *, min_s: float = 2.0, max_s: float = 6.0, areas: int = 4
) -> list[Node]:
    rng = random.Random(seed)
    nodes = []
    for i in range(tasks):
        roll = rng.random()
        wanted = 0 if roll < 0.35 else 1 if roll < 0.8 else 2
        pool = list(range(max(0, i - 10), i))
        blockers = tuple(sorted(rng.sample(pool, min(wanted, len(pool)))))
        seconds = round(rng.uniform(min_s, max_s), 2)
        shared = rng.random() < 0.25
        path = f"areas/area-{rng.randrange(areas)}.txt" if shared else f"tasks/task-{i}.txt"
        nodes.append(Node(i, blockers, seconds, path, shared, (path,)))
    return nodes


def repo_files(nodes: list[Node]) -> dict[str, str]:
    """The files the shared tasks append to, as they are on ``main`` at the start, and a
    ``.gitattributes`` that merges them with git's ``union`` driver: two appends in flight at
    once still conflict where GitHub computes mergeability, so the steward sends a rebase job,
    whose git rebase then keeps both lines (the ``script`` agent cannot resolve conflict
    markers; without it a task that conflicts twice goes to a person and the run stops)."""
    files = {n.path: f"{n.path}: one line per task.\n" for n in nodes if n.shared}
    return {**files, ".gitattributes": "areas/*.txt merge=union\n"}


def critical_path(nodes: list[Node], merge_s: float) -> float:
    longest: dict[int, float] = {}
    for node in nodes:  # blockers come first
        before = max((longest[b] for b in node.blockers), default=0.0)
        longest[node.index] = before + node.seconds + merge_s
    return max(longest.values(), default=0.0)


def lower_bound(nodes: list[Node], k: int, merge_s: float) -> dict[str, float]:
    work = sum(n.seconds for n in nodes)
    path = critical_path(nodes, merge_s)
    return {
        "lower_bound_s": round(max(path, work / k), 2),
        "critical_path_s": round(path, 2),
        "work_over_k_s": round(work / k, 2),
    }


def describe(nodes: list[Node]) -> dict[str, Any]:
    edges = sum(len(n.blockers) for n in nodes)
    depth: dict[int, int] = {}
    for n in nodes:
        depth[n.index] = 1 + max((depth[b] for b in n.blockers), default=0)
    return {
        "tasks": len(nodes),
        "edges": edges,
        "depth": max(depth.values(), default=0),
        "work_s": round(sum(n.seconds for n in nodes), 1),
        "sharing_a_file": sum(1 for n in nodes if n.shared),
    }
