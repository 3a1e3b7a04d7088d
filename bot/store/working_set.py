"""The working set: the tasks the bot's hot paths look at, without walking the whole history.

Every task that is not merged is in it, and merged tasks merged at or after a cutoff (the
service passes ``now - merged_retention_s``; a merged task without ``merged_at`` stays in too).
Older merged tasks stay in the table for reports (``list_tasks`` still returns them all) but
cost nothing per view refresh or graph analysis: both queries run on the
``(state, merged_at)`` index, so their cost follows the working set, not the history.

A task in the working set may be blocked by one that left it. Such a blocker is still *done*:
``WorkingSet.done`` holds those blockers that are merged tasks, found by primary key (one query
per repository) for just the blockers missing from the set, not by a scan of the history.
Each store remembers the ones it found: a reference outside the working set that once was a
merged task is one still (every task that is not merged is in the set, read in the same
transaction, and tasks are never deleted), so a steady working set costs no lookup at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from bot.core.model import IssueRef, Task, TaskState
from bot.store.base import StoreBase
from bot.store.records import row_to_task
from bot.store.tables import tasks

_NOT_MERGED = [state.value for state in TaskState if state is not TaskState.MERGED]
#: Blocker references per lookup (keeps the statement's parameter count modest).
_LOOKUP_CHUNK = 500
#: Remembered merged blockers per store, at most (then it starts afresh).
_KNOWN_MERGED_MAX = 100_000


@dataclass(frozen=True)
class WorkingSet:
    #: The working set's tasks, ordered by (repo, number) like ``list_tasks``.
    tasks: list[Task]
    #: Blockers of those tasks that are merged tasks outside the working set.
    done: frozenset[IssueRef]


class WorkingSetRows(StoreBase):
    # Merged tasks found outside the working set; replaced whole, never changed in place
    # (readers in other threads keep a consistent set).
    _known_merged: frozenset[IssueRef] = frozenset()

    def working_set(self, merged_since: float) -> WorkingSet:
        """Tasks not merged plus those merged at or after ``merged_since``, and the merged
        blockers that left the set (read in the same transaction)."""
        merged = tasks.c.state == TaskState.MERGED.value
        query = sa.union_all(
            sa.select(tasks).where(tasks.c.state.in_(_NOT_MERGED)),
            sa.select(tasks).where(merged, tasks.c.merged_at >= merged_since),
            sa.select(tasks).where(merged, tasks.c.merged_at.is_(None)),
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
            found = sorted((row_to_task(row) for row in rows), key=lambda t: (t.repo, t.number))
            present = {task.ref for task in found}
            absent = {
                blocker
                for task in found
                if task.state is not TaskState.MERGED
                for blocker in task.blocked_by
                if blocker not in present
            }
            known = self._known_merged
            unknown = absent - known
            new = self._merged_among(conn, unknown) if unknown else frozenset()
        if new:
            grown = known | new
            self._known_merged = grown if len(grown) <= _KNOWN_MERGED_MAX else new
            known = grown
        return WorkingSet(found, frozenset(absent & known))

    def merged_tasks(self, refs: Iterable[IssueRef]) -> frozenset[IssueRef]:
        """Those of ``refs`` that are merged tasks (looked up by primary key)."""
        with self._read() as conn:
            return self._merged_among(conn, set(refs))

    @staticmethod
    def _merged_among(conn: sa.Connection, refs: set[IssueRef]) -> frozenset[IssueRef]:
        # One query per repository, ``repo = ? AND number IN (...)``, on the primary key. (A
        # row-value ``(repo, number) IN`` makes SQLite scan the table, and a ``state`` term
        # lets it pick the state index, which walks every merged task: the history.)
        numbers: dict[str, list[int]] = {}
        for ref in refs:
            numbers.setdefault(ref.repo, []).append(ref.number)
        done: set[IssueRef] = set()
        for repo, wanted in sorted(numbers.items()):
            wanted.sort()
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                query = sa.select(tasks.c.number, tasks.c.state).where(
                    tasks.c.repo == repo,
                    tasks.c.number.in_(wanted[start : start + _LOOKUP_CHUNK]),
                )
                done.update(
                    IssueRef(repo, number)
                    for number, state in conn.execute(query)
                    if state == TaskState.MERGED.value
                )
        return frozenset(done)
