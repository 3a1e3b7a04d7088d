"""The working set: the tasks the bot's hot paths look at, without walking the whole history.

Every task that is not merged is in it, and merged tasks merged at or after a cutoff (the
service passes ``now - merged_retention_s``; a merged task without ``merged_at`` stays in too).
Older merged tasks stay in the table for reports (``list_tasks`` still returns them all) but
cost nothing per view refresh or graph analysis: both queries run on the
``(state, merged_at)`` index, so their cost follows the working set, not the history.

A task in the working set may be blocked by one that left it. Such a blocker is still *done*:
``WorkingSet.done`` holds those blockers that are merged tasks, found with one indexed
lookup by primary key of just the blockers missing from the set (not a scan of the history).
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


@dataclass(frozen=True)
class WorkingSet:
    #: The working set's tasks, ordered by (repo, number) like ``list_tasks``.
    tasks: list[Task]
    #: Blockers of those tasks that are merged tasks outside the working set.
    done: frozenset[IssueRef]


class WorkingSetRows(StoreBase):
    def working_set(self, merged_since: float) -> WorkingSet:
        """Tasks not merged plus those merged at or after ``merged_since``, and the merged
        blockers that left the set (one read transaction, so both agree)."""
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
            done = self._merged_among(conn, absent)
        return WorkingSet(found, done)

    def merged_tasks(self, refs: Iterable[IssueRef]) -> frozenset[IssueRef]:
        """Those of ``refs`` that are merged tasks (looked up by primary key)."""
        with self._read() as conn:
            return self._merged_among(conn, set(refs))

    @staticmethod
    def _merged_among(conn: sa.Connection, refs: set[IssueRef]) -> frozenset[IssueRef]:
        wanted = sorted(refs)
        done: set[IssueRef] = set()
        key = sa.tuple_(tasks.c.repo, tasks.c.number)
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = [(ref.repo, ref.number) for ref in wanted[start : start + _LOOKUP_CHUNK]]
            query = sa.select(tasks.c.repo, tasks.c.number).where(
                key.in_(chunk), tasks.c.state == TaskState.MERGED.value
            )
            done.update(IssueRef(repo, number) for repo, number in conn.execute(query))
        return frozenset(done)
