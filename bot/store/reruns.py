"""The steward's re-runs of red required checks (``check_reruns`` table).

A check is re-run at most once per (repository, head, name), across restarts and replicas:
the row is written before GitHub is asked, and only the writer that inserts it asks.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from bot.store.base import StoreBase
from bot.store.tables import check_reruns


class RerunRows(StoreBase):
    def take_rerun(
        self, repo: str, head_sha: str, name: str, check_run_id: int, now: float
    ) -> bool:
        """Record that check run ``check_run_id`` is re-run; ``False`` when this head's check
        was re-run already (then it is not asked again)."""
        values = {
            "repo": repo,
            "head_sha": head_sha,
            "name": name,
            "check_run_id": check_run_id,
            "requested_at": now,
        }
        statement = (
            self._insert(check_reruns)
            .values(values)
            .on_conflict_do_nothing()
            .returning(check_reruns.c.name)  # an INSERT's rowcount is -1 on psycopg
        )
        with self._write() as conn:
            return conn.execute(statement).first() is not None

    def reruns(self, repo: str, head_shas: Collection[str]) -> dict[tuple[str, str, str], int]:
        """The re-runs asked for on these heads: (repo, head, name) -> the run re-run."""
        if not head_shas:
            return {}
        query = sa.select(
            check_reruns.c.head_sha, check_reruns.c.name, check_reruns.c.check_run_id
        ).where(check_reruns.c.repo == repo, check_reruns.c.head_sha.in_(list(head_shas)))
        with self._read() as conn:
            return {(repo, sha, name): int(rid) for sha, name, rid in conn.execute(query)}

    def take_flake(self, repo: str, head_sha: str, name: str) -> bool:
        """Mark the re-run check a flake; ``True`` only the first time (record it once)."""
        statement = (
            check_reruns.update()
            .where(
                check_reruns.c.repo == repo,
                check_reruns.c.head_sha == head_sha,
                check_reruns.c.name == name,
                check_reruns.c.flaky.is_(False),
            )
            .values(flaky=True)
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1
