"""The director's plans (``plans`` table) and the issues filed for their tasks (``plan_tasks``)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from bot.store.base import StoreBase
from bot.store.records import PlanTaskRecord
from bot.store.tables import plan_tasks


class PlanRows(StoreBase):
    """Plans: requested, planned, filed, approved, completed (``bot/director/service.py``)."""


def _task_key(plan_id: str, idx: int) -> sa.ColumnElement[bool]:
    return sa.and_(plan_tasks.c.plan_id == plan_id, plan_tasks.c.idx == idx)


class PlanTaskRows(StoreBase):
    """Each plan task's filed issue and whether it is linked (``bot/director/filing.py``)."""

    def record_plan_tasks(self, plan_id: str, titles: Sequence[str]) -> None:
        """A row per task (index = position in ``titles``); rows already there are kept."""
        if not titles:
            return
        rows = [{"plan_id": plan_id, "idx": i, "title": t} for i, t in enumerate(titles)]
        with self._write() as conn:
            conn.execute(self._insert(plan_tasks).values(rows).on_conflict_do_nothing())

    def plan_task_rows(self, plan_id: str) -> list[PlanTaskRecord]:
        """The plan's tasks in plan order."""
        query = sa.select(plan_tasks).where(plan_tasks.c.plan_id == plan_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(plan_tasks.c.idx)).mappings().all()
        return [
            PlanTaskRecord(
                plan_id=row["plan_id"],
                idx=int(row["idx"]),
                title=row["title"],
                number=row["number"],
                issue_id=row["issue_id"],
                linked=bool(row["linked"]),
                closed=bool(row["closed"]),
            )
            for row in rows
        ]

    def set_plan_task_issue(self, plan_id: str, idx: int, number: int, issue_id: int) -> None:
        """The issue filed for a task (its number and its database id)."""
        with self._write() as conn:
            conn.execute(
                plan_tasks.update()
                .where(_task_key(plan_id, idx))
                .values(number=number, issue_id=issue_id)
            )

    def set_plan_task_linked(self, plan_id: str, idx: int) -> None:
        """The task's issue is a sub-issue of the epic and has all its "blocked by" links."""
        with self._write() as conn:
            conn.execute(plan_tasks.update().where(_task_key(plan_id, idx)).values(linked=True))

    def close_plan_task(self, plan_id: str, idx: int) -> None:
        """A replan closed the task's issue (as not planned)."""
        with self._write() as conn:
            conn.execute(plan_tasks.update().where(_task_key(plan_id, idx)).values(closed=True))
