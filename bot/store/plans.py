"""The director's plans (``plans`` table) and the issues filed for their tasks (``plan_tasks``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from bot.core.model import Task
from bot.store.base import StoreBase
from bot.store.records import PlanTaskRecord, row_to_task
from bot.store.tables import plan_tasks, plans, tasks


class PlanState(StrEnum):
    """A plan's life (``bot/director/service.py``): requested -> planning (a runner holds the
    plan job) -> filing -> drafted (filed, labeled ``stoneforge:draft``) -> approved ->
    completed; or invalid, failed, replaced (a replan superseded it), cancelled."""

    REQUESTED = "requested"
    PLANNING = "planning"
    FILING = "filing"
    DRAFTED = "drafted"
    APPROVED = "approved"
    COMPLETED = "completed"
    INVALID = "invalid"
    FAILED = "failed"
    REPLACED = "replaced"
    CANCELLED = "cancelled"


#: a plan being made: no second ``/stoneforge plan`` on the same epic meanwhile
IN_THE_MAKING = (PlanState.REQUESTED, PlanState.PLANNING, PlanState.FILING)
#: the plan an epic's commands act on (``status``, ``approve``, ``replan``, ``pause``)
LIVE = (*IN_THE_MAKING, PlanState.DRAFTED, PlanState.APPROVED, PlanState.COMPLETED)


@dataclass(frozen=True)
class PlanRecord:
    """One row of ``plans``."""

    plan_id: str
    repo: str
    epic: int
    installation_id: int
    state: PlanState
    requested_by: str
    created_at: float
    updated_at: float
    guidance: str = ""
    request_comment_id: int | None = None
    replaces: str | None = None
    plan_json: str | None = None
    errors: tuple[str, ...] = ()
    detail: str | None = None
    comment_id: int | None = None
    approved_by: str | None = None
    completed_at: float | None = None
    paused: bool = False
    cost_usd: float | None = None
    dispatches: int = 0
    worker: str | None = None
    job_owner: str | None = None
    job_secret_hash: str | None = None
    lease_until: float | None = None


_FIELDS = tuple(f.name for f in dataclasses.fields(PlanRecord))


def _record(row: RowMapping) -> PlanRecord:
    values: dict[str, Any] = {name: row[name] for name in _FIELDS}
    values["state"] = PlanState(row["state"])
    values["errors"] = tuple(json.loads(row["errors"] or "[]"))
    values["paused"] = bool(row["paused"])
    values["dispatches"] = int(row["dispatches"] or 0)
    return PlanRecord(**values)


def _row(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise TypeError(f"cannot update plan fields: {sorted(unknown)}")
    row = dict(fields)
    if "state" in row:
        row["state"] = PlanState(row["state"]).value
    if "errors" in row:
        row["errors"] = json.dumps(list(row["errors"]))
    return row


class PlanRows(StoreBase):
    """Plans: requested, planned, filed, approved, completed (``bot/director/service.py``)."""

    def request_plan(self, record: PlanRecord) -> PlanRecord | None:
        """Store a new plan request, unless the epic has a plan being made (that one is
        returned instead, and nothing is stored).

        SQLite runs one writer at a time, so the look and the insert decide together there.
        On PostgreSQL a ``SELECT ... FOR UPDATE`` that finds no row locks nothing: two
        replicas could both see none and both insert. The unique index ``ux_plans_making``
        (one plan being made per epic) refuses the second insert, which then returns the
        first one's plan like any other busy epic."""
        busy = self._making(record.repo, record.epic)
        if busy is not None:
            return busy
        values = _row({name: getattr(record, name) for name in _FIELDS})
        try:
            with self._write() as conn:
                conn.execute(plans.insert().values(values))
        except sa.exc.IntegrityError:
            raced = self._making(record.repo, record.epic)
            if raced is None:
                raise
            return raced
        return None

    def _making(self, repo: str, epic: int) -> PlanRecord | None:
        """The epic's plan being made (requested, planning or filing), if any."""
        making = [s.value for s in IN_THE_MAKING]
        query = sa.select(plans).where(
            plans.c.repo == repo, plans.c.epic == epic, plans.c.state.in_(making)
        )
        with self._read() as conn:
            found = conn.execute(query).mappings().first()
        return None if found is None else _record(found)

    def get_plan(self, plan_id: str) -> PlanRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(plans).where(plans.c.plan_id == plan_id)).mappings()
            found = row.first()
        return None if found is None else _record(found)

    def current_plan(self, repo: str, epic: int) -> PlanRecord | None:
        """The epic's newest plan that is not superseded or refused (None: it has none)."""
        query = (
            sa.select(plans)
            .where(
                plans.c.repo == repo,
                plans.c.epic == epic,
                plans.c.state.in_([s.value for s in LIVE]),
            )
            .order_by(plans.c.created_at.desc(), plans.c.plan_id)
            .limit(1)
        )
        with self._read() as conn:
            found = conn.execute(query).mappings().first()
        return None if found is None else _record(found)

    def latest_plan(self, repo: str, epic: int) -> PlanRecord | None:
        """The epic's newest plan in any state."""
        query = (
            sa.select(plans)
            .where(plans.c.repo == repo, plans.c.epic == epic)
            .order_by(plans.c.created_at.desc(), plans.c.plan_id)
            .limit(1)
        )
        with self._read() as conn:
            found = conn.execute(query).mappings().first()
        return None if found is None else _record(found)

    def plans_in(self, *states: PlanState) -> list[PlanRecord]:
        query = (
            sa.select(plans)
            .where(plans.c.state.in_([PlanState(s).value for s in states]))
            .order_by(plans.c.created_at, plans.c.plan_id)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_record(row) for row in rows]

    def update_plan(
        self, plan_id: str, *, expect: PlanState | None = None, **fields: Any
    ) -> PlanRecord | None:
        """Change some fields; with ``expect``, only while the plan is in that state (None:
        it was not, or there is no such plan)."""
        where = [plans.c.plan_id == plan_id]
        if expect is not None:
            where.append(plans.c.state == PlanState(expect).value)
        with self._write() as conn:
            done = conn.execute(plans.update().where(*where).values(_row(fields)))
            if done.rowcount != 1:
                return None
            row = conn.execute(sa.select(plans).where(plans.c.plan_id == plan_id)).mappings()
            return _record(row.one())

    def claim_plan(
        self, *, worker: str, now: float, lease_s: float, owner: str, secret_hash: str
    ) -> PlanRecord | None:
        """Atomically move the oldest requested plan (not held until later) to planning, with
        one more dispatch, the claimer and its secret's hash; None when there is none."""
        due = sa.and_(
            plans.c.state == PlanState.REQUESTED.value,
            sa.or_(plans.c.lease_until.is_(None), plans.c.lease_until <= now),
        )
        claim = {
            "state": PlanState.PLANNING.value,
            "worker": worker,
            "lease_until": now + lease_s,
            "dispatches": plans.c.dispatches + 1,
            "job_owner": owner,
            "job_secret_hash": secret_hash,
            "updated_at": now,
        }
        with self._write() as conn:
            query = sa.select(plans.c.plan_id).where(due).order_by(plans.c.created_at).limit(1)
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            chosen = conn.execute(query).scalar()
            if chosen is None:
                return None
            conn.execute(plans.update().where(plans.c.plan_id == chosen, due).values(claim))
            row = conn.execute(sa.select(plans).where(plans.c.plan_id == chosen)).mappings()
            return _record(row.one())

    def expired_plan_leases(self, now: float) -> list[PlanRecord]:
        """Plans whose plan job's runner stopped sending heartbeats."""
        query = sa.select(plans).where(
            plans.c.state == PlanState.PLANNING.value,
            plans.c.lease_until.is_not(None),
            plans.c.lease_until < now,
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_record(row) for row in rows]

    def tasks_of_plan(self, plan_id: str) -> list[Task]:
        """The tasks made from a plan's issues, by their index in the plan."""
        query = (
            sa.select(tasks)
            .where(tasks.c.plan_id == plan_id)
            .order_by(tasks.c.planned_index, tasks.c.number)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [row_to_task(row) for row in rows]


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
