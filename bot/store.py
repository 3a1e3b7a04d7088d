"""Storage adapter: webhook deliveries and tasks in SQL (SQLAlchemy 2 Core, synchronous).

SQLite (``sqlite:///path``) is the embedded default; PostgreSQL (``postgresql+psycopg://...``)
runs the same code for several bot replicas. The service calls this from worker threads, so
every method opens its own short transaction.

Concurrency:

* ``record_delivery`` is ``INSERT ... ON CONFLICT DO NOTHING``: a redelivered GUID is stored once.
* ``claim_task`` flips the first still-queued candidate to running. PostgreSQL locks it with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent claimers pass over each other's rows;
  SQLite runs every write transaction as ``BEGIN IMMEDIATE`` (one writer at a time, WAL mode so
  readers are not blocked) and uses a conditional ``UPDATE ... WHERE state = 'queued'``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from bot.core.model import IssueRef, Task, TaskState

metadata = sa.MetaData()

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("guid", sa.String(64), primary_key=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64)),
    sa.Column("installation_id", sa.BigInteger),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("processed_at", sa.Double),
    sa.Column("error", sa.Text),
    sa.Index("ix_deliveries_unprocessed", "processed_at", "received_at"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("issue_id", sa.BigInteger, nullable=False, default=0),
    sa.Column("installation_id", sa.BigInteger),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("blocked_by", sa.Text, nullable=False, default="[]"),  # JSON ["owner/repo#N", ...]
    sa.Column("priority", sa.Integer, nullable=False, default=2),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("worker", sa.String(200)),
    sa.Column("branch", sa.String(255)),
    sa.Column("pr_number", sa.Integer),
    sa.Column("head_sha", sa.String(64)),
    sa.Column("created_at", sa.Double, nullable=False, default=0.0),
    sa.Column("dispatched_at", sa.Double),
    sa.Column("agent_seconds", sa.Double),
    sa.Column("merged_at", sa.Double),
    sa.Column("merge_sha", sa.String(64)),
    sa.Column("lease_until", sa.Double),
    sa.Column("detail", sa.Text),
    sa.Index("ix_tasks_state", "state"),
)

_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))


@dataclass(frozen=True)
class Delivery:
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    payload: bytes
    received_at: float


class Store:
    """Deliveries and tasks. ``url`` is any SQLAlchemy URL; SQLite and PostgreSQL are tested."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        self.dialect = self.engine.dialect.name
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- deliveries ---------------------------------------------------------------------------

    def record_delivery(
        self,
        guid: str,
        event: str,
        action: str | None,
        installation_id: int | None,
        payload: bytes,
        now: float,
    ) -> bool:
        """Store a delivery; ``False`` if its GUID is already stored (a duplicate)."""
        values = {
            "guid": guid,
            "event": event,
            "action": action,
            "installation_id": installation_id,
            "payload": payload,
            "received_at": now,
        }
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = (
            insert(deliveries)
            .values(values)
            .on_conflict_do_nothing()
            .returning(deliveries.c.guid)  # rowcount of an INSERT is not reliable across drivers
        )
        with self._write() as conn:
            return conn.execute(statement).first() is not None

    def unprocessed_deliveries(self, limit: int = 100) -> list[Delivery]:
        """Deliveries not yet marked processed, oldest first."""
        query = (
            sa.select(deliveries)
            .where(deliveries.c.processed_at.is_(None))
            .order_by(deliveries.c.received_at, deliveries.c.guid)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Delivery(
                guid=row["guid"],
                event=row["event"],
                action=row["action"],
                installation_id=row["installation_id"],
                payload=bytes(row["payload"]),
                received_at=row["received_at"],
            )
            for row in rows
        ]

    def mark_processed(self, guid: str, now: float, error: str | None = None) -> None:
        statement = (
            deliveries.update()
            .where(deliveries.c.guid == guid)
            .values(processed_at=now, error=error)
        )
        with self._write() as conn:
            conn.execute(statement)

    def delivery_count(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one()
            )

    # -- tasks --------------------------------------------------------------------------------

    def get_task(self, ref: IssueRef) -> Task | None:
        with self._read() as conn:
            row = conn.execute(sa.select(tasks).where(_task_key(ref))).mappings().first()
        return None if row is None else _row_to_task(row)

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
        return [_row_to_task(row) for row in rows]

    def upsert_task(self, task: Task) -> None:
        """Insert ``task`` or replace every field of the stored one."""
        values = _task_to_row(task)
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = insert(tasks).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["repo", "number"],
            set_={k: statement.excluded[k] for k in values if k not in ("repo", "number")},
        )
        with self._write() as conn:
            conn.execute(statement)

    def update_task(self, ref: IssueRef, **fields: Any) -> Task:
        """Change some fields and return the new task; ``KeyError`` if there is no such task.

        Unknown field names raise ``TypeError``; ``repo`` and ``number`` cannot change.
        """
        unknown = set(fields) - set(_TASK_FIELDS)
        if unknown or "repo" in fields or "number" in fields:
            raise TypeError(f"cannot update task fields: {sorted(unknown or fields)}")
        query = sa.select(tasks).where(_task_key(ref))
        if self.dialect == "postgresql":
            query = query.with_for_update()
        with self._write() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                raise KeyError(str(ref))
            task = dataclasses.replace(_row_to_task(row), **fields)
            values = _task_to_row(task)
            changed = {k: values[k] for k in fields}
            if changed:
                conn.execute(tasks.update().where(_task_key(ref)).values(changed))
        return task

    def claim_task(
        self, candidates: Sequence[IssueRef], *, worker: str, now: float, lease_s: float
    ) -> Task | None:
        """Atomically move the first candidate that is still queued to running, or ``None``.

        The claimed task gets ``worker``, ``dispatched_at=now``, ``attempt + 1`` and
        ``lease_until=now + lease_s``. Concurrent claimers never get the same task.
        """
        if not candidates:
            return None
        claim = {
            "state": TaskState.RUNNING.value,
            "worker": worker,
            "dispatched_at": now,
            "attempt": tasks.c.attempt + 1,
            "lease_until": now + lease_s,
        }
        queued = tasks.c.state == TaskState.QUEUED.value
        with self._write() as conn:
            if self.dialect == "postgresql":
                locked = conn.execute(
                    sa.select(tasks.c.repo, tasks.c.number)
                    .where(queued, sa.or_(*(_task_key(ref) for ref in candidates)))
                    .with_for_update(skip_locked=True)
                ).all()
                available = {IssueRef(r.repo, r.number) for r in locked}
                chosen = next((ref for ref in candidates if ref in available), None)
                if chosen is None:
                    return None
                conn.execute(tasks.update().where(_task_key(chosen), queued).values(claim))
            else:
                for ref in candidates:
                    result = conn.execute(
                        tasks.update().where(_task_key(ref), queued).values(claim)
                    )
                    if result.rowcount == 1:
                        chosen = ref
                        break
                else:
                    return None
            row = conn.execute(sa.select(tasks).where(_task_key(chosen))).mappings().one()
        return _row_to_task(row)

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
        return [_row_to_task(row) for row in rows]

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        conn = self.engine.connect().execution_options(stoneforge_write=True)
        with conn, conn.begin():
            yield conn


def _make_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    memory = parsed.database in (None, "", ":memory:")
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=sa.StaticPool if memory else None,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so "begin" below decides the mode.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front, so a transaction never has to upgrade a read
        # lock (which SQLite answers with SQLITE_BUSY instead of waiting).
        write = conn.get_execution_options().get("stoneforge_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _task_key(ref: IssueRef) -> sa.ColumnElement[bool]:
    return sa.and_(tasks.c.repo == ref.repo, tasks.c.number == ref.number)


def _task_to_row(task: Task) -> dict[str, Any]:
    row = {name: getattr(task, name) for name in _TASK_FIELDS}
    row["state"] = TaskState(task.state).value
    row["blocked_by"] = json.dumps([str(ref) for ref in task.blocked_by])
    return row


def _row_to_task(row: RowMapping) -> Task:
    values = {name: row[name] for name in _TASK_FIELDS}
    values["state"] = TaskState(row["state"])
    values["blocked_by"] = tuple(IssueRef.parse(text) for text in json.loads(row["blocked_by"]))
    return Task(**values)
