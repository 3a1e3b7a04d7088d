"""Comment commands acted on (``commands`` table): each comment id once, and pauses."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store.base import StoreBase
from bot.store.tables import commands, repos


class CommandRows(StoreBase):
    """``bot/commands.py``: a command comment is taken once (an edit is not a new command)."""

    def take_command(
        self, comment_id: int, repo: str, issue: int, verb: str, sender: str, now: float
    ) -> bool:
        """Record that the comment's command is acted on; ``False`` when it already was (a
        redelivered webhook, another replica): only the caller that gets ``True`` acts."""
        values = {
            "comment_id": comment_id,
            "repo": repo,
            "issue": issue,
            "verb": verb,
            "sender": sender,
            "received_at": now,
        }
        statement = (
            self._insert(commands)
            .values(values)
            .on_conflict_do_nothing()
            .returning(commands.c.comment_id)
        )
        # RETURNING, not rowcount: psycopg reports -1 for this INSERT, so on PostgreSQL no
        # command was ever taken (tests/bot/test_store.py runs it on both databases).
        with self._write() as conn:
            return conn.execute(statement).first() is not None

    def command_outcome(self, comment_id: int, outcome: str) -> None:
        """What came of the command (for whoever reads the table)."""
        with self._write() as conn:
            conn.execute(
                commands.update().where(commands.c.comment_id == comment_id).values(outcome=outcome)
            )

    def command_record(self, comment_id: int) -> tuple[str, str, str | None] | None:
        """(verb, sender, outcome) of a command taken, or None."""
        query = sa.select(commands.c.verb, commands.c.sender, commands.c.outcome).where(
            commands.c.comment_id == comment_id
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (row[0], row[1], row[2])

    def set_repo_paused(self, repo: str, paused: bool) -> bool:
        """Pause or resume a repository (its control issue's ``pause``); ``False`` if the
        repository is unknown."""
        with self._write() as conn:
            changed = conn.execute(repos.update().where(repos.c.repo == repo).values(paused=paused))
            return changed.rowcount == 1

    def paused_repos(self) -> frozenset[str]:
        """The repositories paused from their control issue: nothing of them is dispatched."""
        with self._read() as conn:
            rows = conn.execute(sa.select(repos.c.repo).where(repos.c.paused.is_(True)))
            return frozenset(row[0] for row in rows)
