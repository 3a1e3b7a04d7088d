"""Registered runners, one-time registration tokens (hashes only) and agent transcripts."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Sequence

import sqlalchemy as sa

from bot.core.model import IssueRef
from bot.store.base import StoreBase
from bot.store.records import RunnerRecord, TranscriptRecord
from bot.store.tables import registration_tokens, runners, transcripts


class RunnerRows(StoreBase):
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
