"""``--history N`` for the benchmarks: N merged tasks already in the bot's store.

The bot's hot paths (view refresh, dispatch candidates, the steward) read only the working set:
tasks not merged plus those merged within ``STONEFORGE_MERGED_RETENTION_S`` (default one day).
A benchmark run with ``--history 10000`` shows their cost no longer grows with the history.

The history is a chain-rich past: every task but each tenth is blocked by the one before it.
Most were merged long ago (30 days and more); the newest ``RECENT_SHARE`` (at least one) were
merged a minute ago, so they are still in the working set and the filter is exercised both
ways. Their numbers start at ``FIRST_NUMBER``, far above any issue a benchmark files. They carry
no installation id, so the bot writes nothing to GitHub for the recent ones it shows once
after it starts.
"""

from __future__ import annotations

import time

from bot.core.model import IssueRef, Task, TaskState
from bot.store import Store
from bot.store.records import task_to_row
from bot.store.tables import tasks as tasks_table

FIRST_NUMBER = 1_000_000
RECENT_SHARE = 0.01
LONG_AGO_S = 30 * 24 * 3600


def history_tasks(repo: str, count: int, now: float) -> list[Task]:
    """``count`` merged tasks of ``repo``: chains of ten, the newest ``RECENT_SHARE`` recent."""
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
    return max(1, round(count * RECENT_SHARE)) if count else 0


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
