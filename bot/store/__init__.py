"""Storage adapter: deliveries, tasks, repositories, spend and locks in SQL (SQLAlchemy 2 Core).

SQLite (``sqlite:///path``) is the embedded default; PostgreSQL (``postgresql+psycopg://...``)
runs the same code for several bot replicas. The service calls this from worker threads, so
every method opens its own short transaction.

Concurrency:

* ``record_delivery`` is ``INSERT ... ON CONFLICT DO NOTHING``: a redelivered GUID is stored once.
* ``claim_task`` flips the first still-queued candidate to running. PostgreSQL locks just that
  row with ``SELECT ... ORDER BY ... LIMIT 1 FOR UPDATE SKIP LOCKED`` so concurrent claimers
  pass over each other's rows;
  SQLite runs every write transaction as ``BEGIN IMMEDIATE`` (one writer at a time, WAL mode so
  readers are not blocked) and uses a conditional ``UPDATE ... WHERE state = 'queued'``.
* ``steward_lock`` gives one steward writer per (repository, base branch) across processes:
  a PostgreSQL session advisory lock, or on SQLite a leased row in ``locks``.

The schema is managed by Alembic (``bot/migrations``). ``Store()`` upgrades the database to the
newest revision; concurrent upgrades are serialised (PostgreSQL advisory lock, SQLite write
lock), and a database made by the pre-Alembic code is adopted in place.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bot import migrations
from bot.core.model import IssueRef, Task, TaskState
from bot.store.base import lock_key, make_engine
from bot.store.commands import CommandRows
from bot.store.deliveries import DeliveryRows
from bot.store.locks import LOCK_LEASE_S, StewardLocks, lock_owner
from bot.store.plans import PlanRows, PlanTaskRows
from bot.store.records import (
    ClaimedJob,
    Delivery,
    JobOwner,
    NewDelivery,
    RepoRecord,
    RunnerRecord,
    TranscriptRecord,
    row_to_task,
    task_key,
    task_to_row,
)
from bot.store.reruns import RerunRows
from bot.store.runners import RunnerRows
from bot.store.tables import TASK_FIELDS, costs, metadata, repos, tasks
from bot.store.waits import WaitRows
from bot.store.working_set import WorkingSet, WorkingSetRows

__all__ = [
    "LOCK_LEASE_S",
    "ClaimedJob",
    "Delivery",
    "JobOwner",
    "NewDelivery",
    "RepoRecord",
    "RunnerRecord",
    "Store",
    "TranscriptRecord",
    "WorkingSet",
    "metadata",
]


class Store(
    DeliveryRows,
    RunnerRows,
    StewardLocks,
    WorkingSetRows,
    PlanRows,
    PlanTaskRows,
    CommandRows,
    RerunRows,
    WaitRows,
):
    """Deliveries and tasks. ``url`` is any SQLAlchemy URL; SQLite and PostgreSQL are tested."""

    def __init__(self, url: str, *, lock_lease_s: float = LOCK_LEASE_S) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.owner = lock_owner()  # identifies this Store's SQLite lock rows
        self.lock_lease_s = lock_lease_s
        self._lock_engine = None
        self._lock_engine_guard = threading.Lock()
        self._migrate()

    def close(self) -> None:
        self.engine.dispose()
        if self._lock_engine is not None:
            self._lock_engine.dispose()

    def _migrate(self) -> None:
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Held to the end of this transaction: a second process waits, then finds head.
                schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
                key = lock_key(f"stoneforge-migrations:{schema}")
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            migrations.upgrade(conn)

    # -- tasks --------------------------------------------------------------------------------

    def get_task(self, ref: IssueRef) -> Task | None:
        with self._read() as conn:
            row = conn.execute(sa.select(tasks).where(task_key(ref))).mappings().first()
        return None if row is None else row_to_task(row)

    def list_tasks(
        self, *, repo: str | None = None, states: Iterable[TaskState] | None = None
    ) -> list[Task]:
        """Tasks ordered by (repo, number), optionally filtered."""
        query = sa.select(tasks).order_by(tasks.c.repo, tasks.c.number)
        if repo is not None:
            query = query.where(tasks.c.repo == repo)
        if states is not None:
            query = query.where(tasks.c.state.in_([TaskState(s).value for s in states]))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [row_to_task(row) for row in rows]

    def task_counts(self) -> dict[str, int]:
        """Number of tasks in each state; every state is present (0 when there are none)."""
        query = sa.select(tasks.c.state, sa.func.count()).group_by(tasks.c.state)
        with self._read() as conn:
            rows = conn.execute(query).all()
        counts = {state.value: 0 for state in TaskState}
        counts.update({state: int(n) for state, n in rows})
        return counts

    def upsert_task(self, task: Task) -> None:
        """Insert ``task`` or replace every field of the stored one."""
        values = task_to_row(task)
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = insert(tasks).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["repo", "number"],
            set_={k: statement.excluded[k] for k in values if k not in ("repo", "number")},
        )
        with self._write() as conn:
            conn.execute(statement)

    def create_task(self, task: Task) -> bool:
        """Insert ``task`` unless one exists for the issue; ``False`` if it already did.

        Creation must never overwrite: a replica (or a concurrent reconciliation) that saw no
        task a moment ago could otherwise reset a task another one just dispatched.
        """
        statement = (
            self._insert(tasks)
            .values(task_to_row(task))
            .on_conflict_do_nothing()
            .returning(tasks.c.number)
        )
        with self._write() as conn:
            return conn.execute(statement).first() is not None

    def update_task(self, ref: IssueRef, **fields: Any) -> Task:
        """Change some fields and return the new task; ``KeyError`` if there is no such task.

        Unknown field names raise ``TypeError``; ``repo`` and ``number`` cannot change.
        """
        unknown = set(fields) - set(TASK_FIELDS)
        if unknown or "repo" in fields or "number" in fields:
            raise TypeError(f"cannot update task fields: {sorted(unknown or fields)}")
        query = sa.select(tasks).where(task_key(ref))
        if self.dialect == "postgresql":
            query = query.with_for_update()
        with self._write() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                raise KeyError(str(ref))
            task = dataclasses.replace(row_to_task(row), **fields)
            values = task_to_row(task)
            changed = {k: values[k] for k in fields}
            if changed:
                conn.execute(tasks.update().where(task_key(ref)).values(changed))
        return task

    def claim_task(
        self, candidates: Sequence[IssueRef], *, worker: str, now: float, lease_s: float
    ) -> Task | None:
        """``claim_job`` without an owner: the claimed task, or ``None``."""
        claimed = self.claim_job(candidates, worker=worker, now=now, lease_s=lease_s)
        return None if claimed is None else claimed.task

    def claim_job(
        self,
        candidates: Sequence[IssueRef],
        *,
        worker: str,
        now: float,
        lease_s: float,
        owner: str | None = None,
        secret_hash: str | None = None,
    ) -> ClaimedJob | None:
        """Atomically move the first candidate that is still queued to running, or ``None``.

        The claimed task gets ``worker``, ``dispatched_at=now``, ``attempt + 1`` and
        ``lease_until=now + lease_s``; its dispatch count goes up by one (never reset, so the
        job id it makes is never reused), its review round too when a review it has not
        answered yet sent it back, and the job's ``owner`` and ``secret_hash`` replace the last
        job's. Concurrent claimers never get the same task.
        """
        if not candidates:
            return None
        unanswered = sa.and_(
            tasks.c.review_id.is_not(None),
            sa.or_(
                tasks.c.revised_review_id.is_(None), tasks.c.revised_review_id != tasks.c.review_id
            ),
        )
        claim = {
            "state": TaskState.RUNNING.value,
            "worker": worker,
            "dispatched_at": now,
            "attempt": tasks.c.attempt + 1,
            "lease_until": now + lease_s,
            # SET expressions read the row as it was: both dialects evaluate them before writing
            "dispatches": tasks.c.dispatches + 1,
            "review_rounds": tasks.c.review_rounds + sa.case((unanswered, 1), else_=0),
            "revised_review_id": tasks.c.review_id,
            "job_owner": owner,
            "job_secret_hash": secret_hash,
        }
        queued = tasks.c.state == TaskState.QUEUED.value
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Lock only the ONE row we take (ORDER BY + LIMIT 1): locking every queued
                # candidate would make a concurrent claimer skip them all and see "none left".
                keys = [task_key(ref) for ref in candidates]
                position = sa.case(*((key, i) for i, key in enumerate(keys)), else_=len(keys))
                locked = conn.execute(
                    sa.select(tasks.c.repo, tasks.c.number)
                    .where(queued, sa.or_(*keys))
                    .order_by(position)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if locked is None:
                    return None
                chosen = IssueRef(locked.repo, locked.number)
                conn.execute(tasks.update().where(task_key(chosen), queued).values(claim))
            else:
                for ref in candidates:
                    result = conn.execute(tasks.update().where(task_key(ref), queued).values(claim))
                    if result.rowcount == 1:
                        chosen = ref
                        break
                else:
                    return None
            row = conn.execute(sa.select(tasks).where(task_key(chosen))).mappings().one()
        return ClaimedJob(row_to_task(row), int(row["dispatches"]), int(row["review_rounds"]))

    def answer_review(self, ref: IssueRef, review_id: int) -> None:
        """The task's running job answers ``review_id`` too (it came in after the claim): the
        task records it, as the review its current round answers."""
        values = {"review_id": review_id, "revised_review_id": review_id}
        with self._write() as conn:
            conn.execute(tasks.update().where(task_key(ref)).values(values))

    def job_owner(self, ref: IssueRef) -> JobOwner | None:
        """The task's current job: its number, state, owner and secret hash (None: no task)."""
        query = sa.select(
            tasks.c.state, tasks.c.dispatches, tasks.c.job_owner, tasks.c.job_secret_hash
        ).where(task_key(ref))
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return JobOwner(ref, TaskState(row.state), int(row.dispatches), row.job_owner,
                        row.job_secret_hash)  # fmt: skip

    def expired_leases(self, now: float) -> list[Task]:
        """Running tasks whose lease ended before ``now``."""
        query = (
            sa.select(tasks)
            .where(
                tasks.c.state == TaskState.RUNNING.value,
                tasks.c.lease_until.is_not(None),
                tasks.c.lease_until < now,
            )
            .order_by(tasks.c.lease_until, tasks.c.repo, tasks.c.number)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [row_to_task(row) for row in rows]

    # -- repositories -------------------------------------------------------------------------

    def upsert_repo(self, repo: str, installation_id: int, *, default_branch: str) -> None:
        """Record an installed repository; an existing one keeps its labels and config state."""
        values = {
            "repo": repo,
            "installation_id": installation_id,
            "default_branch": default_branch,
            "labels_ready": False,
        }
        statement = self._insert(repos).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["repo"],
            set_={
                "installation_id": statement.excluded.installation_id,
                "default_branch": statement.excluded.default_branch,
            },
        )
        with self._write() as conn:
            conn.execute(statement)

    def remove_repo(self, repo: str) -> None:
        with self._write() as conn:
            conn.execute(repos.delete().where(repos.c.repo == repo))

    def repos(self, installation_id: int | None = None) -> list[RepoRecord]:
        """Installed repositories ordered by name, optionally of one installation."""
        query = sa.select(repos).order_by(repos.c.repo)
        if installation_id is not None:
            query = query.where(repos.c.installation_id == installation_id)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            RepoRecord(**{f.name: row[f.name] for f in dataclasses.fields(RepoRecord)})
            for row in rows
        ]

    def mark_labels_ready(self, repo: str) -> bool:
        """Note that the repository's labels exist; ``False`` if the repository is unknown."""
        return self._update_repo(repo, labels_ready=True)

    def save_config(
        self, repo: str, *, text: str | None, sha: str | None, error: str | None
    ) -> bool:
        """Record the result of reading the repository's config file.

        Without ``error`` the text and sha become the last valid config (and the error is
        cleared). With ``error`` only the error changes: the last valid config stays in force.
        ``False`` if the repository is unknown.
        """
        if error is not None:
            return self._update_repo(repo, config_error=error)
        return self._update_repo(repo, config_text=text, config_sha=sha, config_error=None)

    def _update_repo(self, repo: str, **values: Any) -> bool:
        with self._write() as conn:
            changed = conn.execute(
                repos.update().where(repos.c.repo == repo).values(values).returning(repos.c.repo)
            )
            return changed.first() is not None

    # -- agent spend ----------------------------------------------------------------------------

    def add_cost(self, repo: str, day: str, usd: float) -> None:
        """Add ``usd`` to the repository's spend on ``day`` (``"YYYY-MM-DD"``, UTC)."""
        statement = self._insert(costs).values(repo=repo, day=day, usd=usd)
        statement = statement.on_conflict_do_update(
            index_elements=["repo", "day"], set_={"usd": costs.c.usd + statement.excluded.usd}
        )
        with self._write() as conn:
            conn.execute(statement)

    def cost(self, repo: str, day: str) -> float:
        query = sa.select(costs.c.usd).where(costs.c.repo == repo, costs.c.day == day)
        with self._read() as conn:
            usd = conn.execute(query).scalar_one_or_none()
        return 0.0 if usd is None else float(usd)
