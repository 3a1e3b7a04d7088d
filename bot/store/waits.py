"""Each task's current wait in review (``steward_waits`` table; ``bot.core.liveness``).

Kept durably so a restarted bot (or another replica taking the steward's lock) neither restarts
a wait's clock nor tells a pull request the same wait twice: the steward writes a wait as told
before it posts the comment.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from bot.core.liveness import Waiting
from bot.store.base import StoreBase
from bot.store.tables import steward_waits


class WaitRows(StoreBase):
    def waits(self, repo: str) -> dict[int, Waiting]:
        """The repository's tasks in a wait: issue number -> their wait."""
        t = steward_waits.c
        query = sa.select(t.issue, t.wait_key, t.since, t.told).where(t.repo == repo)
        with self._read() as conn:
            return {
                int(issue): Waiting(key, float(since), bool(told))
                for issue, key, since, told in conn.execute(query)
            }

    def put_waits(self, repo: str, waits: Mapping[int, Waiting]) -> None:
        """Replace the repository's waits with ``waits`` (one transaction)."""
        rows = [
            {"repo": repo, "issue": n, "wait_key": w.key, "since": w.since, "told": w.told}
            for n, w in waits.items()
        ]
        with self._write() as conn:
            conn.execute(steward_waits.delete().where(steward_waits.c.repo == repo))
            if rows:
                conn.execute(steward_waits.insert(), rows)
