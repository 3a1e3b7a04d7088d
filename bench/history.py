"""``--history N`` for the benchmarks: N merged tasks already in the bot's store.

The bot's hot paths (view refresh, dispatch candidates, the steward) read only the working set:
tasks not merged plus those merged within ``STONEFORGE_MERGED_RETENTION_S`` (default one day).
A benchmark run with ``--history 10000`` shows their cost no longer grows with the history.

The history is a chain-rich past: every task but each tenth is blocked by the one before it.
Most were merged long ago (30 days and more); the newest ``RECENT`` were merged a minute ago,
so they are still in the working set and the filter is exercised both ways (a fixed number:
what grows with N is only the part the bot must not read). Their numbers start at
``FIRST_NUMBER``, far above any issue a benchmark files. They carry no installation id, so the
bot writes nothing to GitHub for the recent ones it shows once after it starts.

``python bench/history.py [--history 10000] [--active 200]`` times the bot's graph read alone
(working set and ``analyse``) with no history and with ``--history`` merged tasks, beside the
old read of every task.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.graph import analyse  # noqa: E402
from bot.core.model import IssueRef, Task, TaskState  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.store.records import task_to_row  # noqa: E402
from bot.store.tables import tasks as tasks_table  # noqa: E402

FIRST_NUMBER = 1_000_000
RECENT = 20
LONG_AGO_S = 30 * 24 * 3600


def history_tasks(repo: str, count: int, now: float) -> list[Task]:
    """``count`` merged tasks of ``repo``: chains of ten, the newest ``RECENT`` recent."""
    recent = recent_count(count)
    out: list[Task] = []
    for k in range(count):
        number = FIRST_NUMBER + k
        old = k < count - recent
        merged_at = now - LONG_AGO_S - (count - k) if old else now - 60.0
        blockers = (IssueRef(repo, number - 1),) if k % 10 else ()
        out.append(
            Task(
                repo=repo,
                number=number,
                title=f"history {k}",
                state=TaskState.MERGED,
                blocked_by=blockers,
                created_at=merged_at - 600.0,
                dispatched_at=merged_at - 300.0,
                merged_at=merged_at,
                merge_sha=f"{k:040x}",
                branch=f"stoneforge/{number}",
                pr_number=number,
                attempt=1,
            )
        )
    return out


def recent_count(count: int) -> int:
    """How many of ``count`` history tasks were merged recently (inside the working set)."""
    return min(count, RECENT)


def seed_history(database_url: str, repo: str, count: int, now: float | None = None) -> int:
    """Insert ``count`` merged history tasks into the store at ``database_url`` (made if new,
    migrated to head); returns how many are recent (inside the default retention)."""
    rows = history_tasks(repo, count, time.time() if now is None else now)
    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(
                    tasks_table.insert(), [task_to_row(t) for t in rows[start : start + 1000]]
                )
    finally:
        store.close()
    return recent_count(count)


def _live_store(url: str, history: int, active: int, now: float) -> Store:
    """A store with ``history`` merged tasks and ``active`` queued ones; every other queued
    task waits on a history task merged long ago (when there is history)."""
    seed_history(url, "octo/demo", history, now)
    store = Store(url)
    for k in range(active):
        old = IssueRef("octo/demo", FIRST_NUMBER + k) if history > k and k % 2 else None
        blockers = (old,) if old else ()
        store.upsert_task(
            Task(repo="octo/demo", number=k + 1, title=f"live {k}", blocked_by=blockers)
        )
    return store


def main(argv: list[str] | None = None) -> None:
    """Time the bot's graph read (working set + ``analyse``) with 0 and ``--history`` merged
    tasks beside ``--active`` queued ones, interleaved; and the old read of every task."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=200, help="queued tasks")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args(argv)
    now = time.time()
    since = now - 24 * 3600
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        stores = {
            n: _live_store(f"sqlite:///{Path(tmp) / f'h{n}.db'}", n, args.active, now)
            for n in (0, args.history)
        }
        try:

            def working(store: Store) -> None:
                ws = store.working_set(since)
                analyse(ws.tasks, {}, ws.done)

            def everything(store: Store) -> None:
                analyse(store.list_tasks(), {})

            steps = {"working_set": working, "all_tasks": everything}
            times: dict[str, list[float]] = {}
            for round_ in range(args.rounds + 1):
                for n, store in stores.items():
                    for name, step in steps.items():
                        if name == "all_tasks" and round_ % 10:
                            continue  # the old read is slow at 10,000: a few rounds suffice
                        start = time.perf_counter()
                        step(store)
                        if round_:  # the first is a warm-up
                            key = f"{name}_history_{n}"
                            times.setdefault(key, []).append(time.perf_counter() - start)
            result: dict[str, object] = {
                key: {
                    "median_ms": round(statistics.median(values) * 1000, 2),
                    "min_ms": round(min(values) * 1000, 2),
                }
                for key, values in sorted(times.items())
            }
            for n, store in stores.items():
                ws = store.working_set(since)
                result[f"working_set_size_history_{n}"] = {
                    "tasks": len(ws.tasks),
                    "done_outside": len(ws.done),
                }
        finally:
            for store in stores.values():
                store.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
