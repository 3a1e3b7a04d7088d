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
import gzip
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from bot import migrations
from bot.core.model import IssueRef, Task, TaskState

log = logging.getLogger(__name__)

#: How long a SQLite steward lock lasts without renewal (the holder renews it every third).
LOCK_LEASE_S = 60.0

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
    sa.Column("cost_usd", sa.Double),
    sa.Column("ready_at", sa.Double),
    sa.Column("comment_id", sa.BigInteger),
    sa.Column("labeled_by", sa.String(255)),
    sa.Column("not_before", sa.Double),
    sa.Column("agent", sa.String(64)),
    sa.Column("runs_on", sa.Text, nullable=False, default="[]"),  # JSON list of runner labels
    sa.Column("review_id", sa.BigInteger),
    sa.Index("ix_tasks_state", "state"),
)

repos = sa.Table(
    "repos",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("installation_id", sa.BigInteger, nullable=False),
    sa.Column("default_branch", sa.String(255), nullable=False),
    sa.Column("labels_ready", sa.Boolean, nullable=False, default=False),
    sa.Column("config_text", sa.Text),
    sa.Column("config_sha", sa.String(64)),
    sa.Column("config_error", sa.Text),
    sa.Index("ix_repos_installation", "installation_id"),
)

costs = sa.Table(
    "costs",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # "YYYY-MM-DD"
    sa.Column("usd", sa.Double, nullable=False),
)

locks = sa.Table(  # SQLite steward locks; PostgreSQL uses advisory locks instead
    "locks",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

runners = sa.Table(
    "runners",
    metadata,
    sa.Column("runner_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("labels", sa.Text, nullable=False, default="[]"),  # JSON list
    sa.Column("capacity", sa.Integer, nullable=False, default=1),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double),
)

registration_tokens = sa.Table(
    "registration_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("used_at", sa.Double),
)

transcripts = sa.Table(  # agent transcripts, served at /transcripts/<id> and linked on GitHub
    "transcripts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # unguessable: the link is the capability
    sa.Column("repo", sa.String(200), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("runner", sa.String(200)),
    sa.Column("agent", sa.String(64)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),  # gzip of the (redacted) JSONL text
    sa.Index("ix_transcripts_task", "repo", "number"),
)

_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))


@dataclass(frozen=True)
class RunnerRecord:
    runner_id: str
    name: str
    labels: tuple[str, ...]
    capacity: int
    last_seen: float | None


@dataclass(frozen=True)
class TranscriptRecord:
    id: str
    repo: str
    number: int
    attempt: int
    runner: str | None
    agent: str | None
    created_at: float
    size: int  # bytes of text, before compression


@dataclass(frozen=True)
class NewDelivery:
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    payload: bytes
    received_at: float
    processed: bool = False


@dataclass(frozen=True)
class Delivery:
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    payload: bytes
    received_at: float
    processed_at: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class RepoRecord:
    """A repository the App is installed on, with its last read configuration."""

    repo: str
    installation_id: int
    default_branch: str
    labels_ready: bool = False
    config_text: str | None = None  # last VALID config file text
    config_sha: str | None = None  # blob sha of ``config_text``
    config_error: str | None = None  # why the newest config file was rejected, if it was


class Store:
    """Deliveries and tasks. ``url`` is any SQLAlchemy URL; SQLite and PostgreSQL are tested."""

    def __init__(self, url: str, *, lock_lease_s: float = LOCK_LEASE_S) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        self.dialect = self.engine.dialect.name
        self.owner = uuid.uuid4().hex  # identifies this Store's SQLite lock rows
        self.lock_lease_s = lock_lease_s
        self._lock_engine: Engine | None = None
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
                key = _lock_key(f"stoneforge-migrations:{schema}")
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            migrations.upgrade(conn)

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

    # --- runners ------------------------------------------------------------------------
    def create_registration_token(self, token_hash: str, *, now: float, ttl_s: float) -> None:
        with self._write() as conn:
            conn.execute(
                registration_tokens.insert().values(
                    token_hash=token_hash, created_at=now, expires_at=now + ttl_s
                )
            )

    def redeem_registration_token(self, token_hash: str, *, now: float) -> bool:
        """Spend a registration token: True once, for an unused and unexpired token."""
        with self._write() as conn:
            result = conn.execute(
                registration_tokens.update()
                .where(
                    registration_tokens.c.token_hash == token_hash,
                    registration_tokens.c.used_at.is_(None),
                    registration_tokens.c.expires_at > now,
                )
                .values(used_at=now)
            )
            return result.rowcount == 1

    def add_runner(
        self,
        runner_id: str,
        *,
        name: str,
        labels: Sequence[str],
        capacity: int,
        token_hash: str,
        now: float,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                runners.insert().values(
                    runner_id=runner_id,
                    name=name,
                    labels=json.dumps(list(labels)),
                    capacity=capacity,
                    token_hash=token_hash,
                    created_at=now,
                )
            )

    def runner_by_token(self, token_hash: str) -> RunnerRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(runners).where(runners.c.token_hash == token_hash))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return RunnerRecord(
            runner_id=row["runner_id"],
            name=row["name"],
            labels=tuple(json.loads(row["labels"] or "[]")),
            capacity=int(row["capacity"]),
            last_seen=row["last_seen"],
        )

    def touch_runner(self, runner_id: str, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                runners.update().where(runners.c.runner_id == runner_id).values(last_seen=now)
            )

    def record_deliveries(self, rows: Sequence[NewDelivery]) -> list[bool]:
        """Store many deliveries in ONE transaction (group commit); per row, False = duplicate.

        A row with ``processed`` set is stored as already processed (an event nobody handles).
        """
        out: list[bool] = []
        if not rows:
            return out
        with self._write() as conn:
            for row in rows:
                statement = (
                    self._insert(deliveries)
                    .values(
                        guid=row.guid,
                        event=row.event,
                        action=row.action,
                        installation_id=row.installation_id,
                        payload=row.payload,
                        received_at=row.received_at,
                        processed_at=row.received_at if row.processed else None,
                    )
                    .on_conflict_do_nothing()
                    .returning(deliveries.c.guid)
                )
                out.append(conn.execute(statement).first() is not None)
        return out

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
        return [_row_to_delivery(row) for row in rows]

    def get_delivery(self, guid: str) -> Delivery | None:
        with self._read() as conn:
            query = sa.select(deliveries).where(deliveries.c.guid == guid)
            row = conn.execute(query).mappings().first()
        return None if row is None else _row_to_delivery(row)

    def delivery_stats(self) -> dict[str, int]:
        """``{"total", "unprocessed", "failed"}``; failed = processed with an error."""
        count = sa.func.count()
        query = sa.select(
            count.label("total"),
            count.filter(deliveries.c.processed_at.is_(None)).label("unprocessed"),
            count.filter(deliveries.c.error.is_not(None)).label("failed"),
        ).select_from(deliveries)
        with self._read() as conn:
            row = conn.execute(query).mappings().one()
        return {name: int(row[name] or 0) for name in ("total", "unprocessed", "failed")}

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
        values = _task_to_row(task)
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
            .values(_task_to_row(task))
            .on_conflict_do_nothing()
            .returning(tasks.c.number)
        )
        with self._write() as conn:
            return conn.execute(statement).first() is not None

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
                # Lock only the ONE row we take (ORDER BY + LIMIT 1): locking every queued
                # candidate would make a concurrent claimer skip them all and see "none left".
                keys = [_task_key(ref) for ref in candidates]
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

    # -- transcripts ----------------------------------------------------------------------------

    def add_transcript(self, record: TranscriptRecord, text: bytes) -> None:
        """Store one attempt's transcript (``text`` uncompressed; stored gzip-compressed)."""
        values = dataclasses.asdict(record) | {"content": gzip.compress(text, 6)}
        with self._write() as conn:
            conn.execute(transcripts.insert().values(values))

    def transcript(self, transcript_id: str) -> tuple[TranscriptRecord, bytes] | None:
        """The record and uncompressed text of one transcript, or ``None``."""
        query = sa.select(transcripts).where(transcripts.c.id == transcript_id)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        fields = {f.name: row[f.name] for f in dataclasses.fields(TranscriptRecord)}
        return TranscriptRecord(**fields), gzip.decompress(row["content"])

    def transcripts_for(self, ref: IssueRef) -> list[TranscriptRecord]:
        """A task's transcripts, oldest first."""
        columns = [transcripts.c[f.name] for f in dataclasses.fields(TranscriptRecord)]
        query = (
            sa.select(*columns)
            .where(transcripts.c.repo == ref.repo, transcripts.c.number == ref.number)
            .order_by(transcripts.c.created_at, transcripts.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [TranscriptRecord(**dict(row)) for row in rows]

    # -- steward locks --------------------------------------------------------------------------

    @contextmanager
    def steward_lock(self, repo: str, base: str) -> Iterator[bool]:
        """Try to become the one steward writer for ``(repo, base)``; never blocks.

        Yields ``True`` when this block holds the lock (released at exit), ``False`` when
        another holder has it. Not re-entrant: a second attempt through the same Store while
        the first block runs also gets ``False``.

        PostgreSQL: ``pg_try_advisory_lock`` on a connection held for the block, so a crashed
        holder's lock goes with its connection. SQLite: a row in ``locks`` leased for
        ``lock_lease_s`` and renewed by a thread while the block runs, so a crashed holder's
        lock can be taken over once its lease ends.
        """
        name = f"{repo}:{base}"
        if self.dialect == "postgresql":
            with self._advisory_lock(name) as held:
                yield held
        else:
            with self._leased_lock(name) as held:
                yield held

    @contextmanager
    def _advisory_lock(self, name: str) -> Iterator[bool]:
        conn = self._locks_engine().connect().execution_options(isolation_level="AUTOCOMMIT")
        # Advisory locks are database-wide: key them by schema too, so two deployments
        # (or test runs) sharing one database in different schemas never block each other.
        schema = conn.execute(sa.select(sa.func.current_schema())).scalar_one()
        key = _lock_key(f"{schema}:{name}")
        try:
            held = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one())
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                    except BaseException:
                        conn.invalidate()  # never hand a session that may hold it back to the pool
                        raise
        finally:
            conn.close()

    def _locks_engine(self) -> Engine:
        # Locks are held on their own pool so that holders never starve the store's queries.
        with self._lock_engine_guard:
            if self._lock_engine is None:
                self._lock_engine = sa.create_engine(
                    self.url, pool_pre_ping=True, pool_size=2, max_overflow=-1
                )
            return self._lock_engine

    @contextmanager
    def _leased_lock(self, name: str) -> Iterator[bool]:
        if not self._take_lease(name):
            yield False
            return
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew_lease, args=(name, stop), name=f"lock-{name}", daemon=True
        )
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join()
            with self._write() as conn:
                conn.execute(locks.delete().where(locks.c.key == name, locks.c.owner == self.owner))

    def _take_lease(self, name: str) -> bool:
        now = time.time()
        insert = sqlite.insert(locks).values(
            key=name, owner=self.owner, expires_at=now + self.lock_lease_s
        )
        take = insert.on_conflict_do_update(  # only over a lease that has run out
            index_elements=["key"],
            set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at},
            where=locks.c.expires_at < now,
        ).returning(locks.c.key)
        with self._write() as conn:
            return conn.execute(take).first() is not None

    def _renew_lease(self, name: str, stop: threading.Event) -> None:
        while not stop.wait(self.lock_lease_s / 3):
            try:
                with self._write() as conn:
                    renewed = conn.execute(
                        locks.update()
                        .where(locks.c.key == name, locks.c.owner == self.owner)
                        .values(expires_at=time.time() + self.lock_lease_s)
                        .returning(locks.c.key)
                    ).first()
            except Exception:
                log.exception("lock_renew_failed", extra={"lock": name})
                continue
            if renewed is None:
                log.error("lock_lost", extra={"lock": name})
                return

    # -- transactions -------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's ``INSERT`` (both have ``on_conflict_do_*``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

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


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL advisory locks."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _row_to_delivery(row: RowMapping) -> Delivery:
    return Delivery(
        guid=row["guid"],
        event=row["event"],
        action=row["action"],
        installation_id=row["installation_id"],
        payload=bytes(row["payload"]),
        received_at=row["received_at"],
        processed_at=row["processed_at"],
        error=row["error"],
    )


def _task_key(ref: IssueRef) -> sa.ColumnElement[bool]:
    return sa.and_(tasks.c.repo == ref.repo, tasks.c.number == ref.number)


def _task_to_row(task: Task) -> dict[str, Any]:
    row = {name: getattr(task, name) for name in _TASK_FIELDS}
    row["state"] = TaskState(task.state).value
    row["blocked_by"] = json.dumps([str(ref) for ref in task.blocked_by])
    row["runs_on"] = json.dumps(list(task.runs_on))
    return row


def _row_to_task(row: RowMapping) -> Task:
    values = {name: row[name] for name in _TASK_FIELDS}
    values["state"] = TaskState(row["state"])
    values["blocked_by"] = tuple(IssueRef.parse(text) for text in json.loads(row["blocked_by"]))
    values["runs_on"] = tuple(json.loads(row["runs_on"] or "[]"))
    return Task(**values)
