"""Steward locks: one writer per (repository, base branch) across bot processes.

PostgreSQL: a session advisory lock on its own connection pool, keyed by schema and name.
SQLite: a leased row in ``locks``, renewed by a thread while held, taken over once it ran out,
or at once when its owner was a process of this machine that is gone (a SQLite file is local, so
its holders share one machine: a bot killed with SIGKILL and restarted must not wait out the lease
of its own dead self before it stewards again).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine

from bot.store.base import StoreBase, lock_key
from bot.store.tables import locks

log = logging.getLogger(__name__)

#: How long a SQLite steward lock lasts without renewal (the holder renews it every third).
LOCK_LEASE_S = 60.0


def lock_owner() -> str:
    """A lock owner's name: ``<host>:<pid>:<random>`` (64 characters at most)."""
    return f"{socket.gethostname()[:36]}:{os.getpid()}:{uuid4().hex[:16]}"


def owner_is_gone(owner: str) -> bool:
    """Whether ``owner`` (:func:`lock_owner`) was a process of this machine that no longer
    runs. An owner of another machine, or in another form, is never judged gone."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:36] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: another Store of ours holds it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


class StewardLocks(StoreBase):
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
        key = lock_key(f"{schema}:{name}")
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
            if conn.execute(take).first() is not None:
                return True
            holder = conn.execute(sa.select(locks.c.owner).where(locks.c.key == name)).scalar()
            if holder is None or not owner_is_gone(holder):
                return False
            log.warning("lock_taken_from_dead_owner", extra={"lock": name, "holder": holder})
            taken = conn.execute(
                locks.update()
                .where(locks.c.key == name, locks.c.owner == holder)
                .values(owner=self.owner, expires_at=now + self.lock_lease_s)
                .returning(locks.c.key)
            ).first()
            return taken is not None

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
