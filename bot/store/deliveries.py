"""Webhook deliveries: stored before they are acknowledged, marked when handled."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bot.store.base import StoreBase
from bot.store.records import Delivery, NewDelivery, row_to_delivery
from bot.store.tables import deliveries


class DeliveryRows(StoreBase):
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
        return [row_to_delivery(row) for row in rows]

    def processed_since(
        self, after: float, events: Sequence[str], limit: int = 1000
    ) -> list[tuple[str, str, float]]:
        """``(guid, event, processed_at)`` of deliveries of ``events`` processed after
        ``after`` (by any bot replica sharing the store), oldest first."""
        query = (
            sa.select(deliveries.c.guid, deliveries.c.event, deliveries.c.processed_at)
            .where(deliveries.c.processed_at > after, deliveries.c.event.in_(list(events)))
            .order_by(deliveries.c.processed_at)
            .limit(limit)
        )
        with self._read() as conn:
            return [(r.guid, r.event, float(r.processed_at)) for r in conn.execute(query)]

    def delivery_payloads(self, guids: Sequence[str]) -> dict[str, bytes]:
        query = sa.select(deliveries.c.guid, deliveries.c.payload).where(
            deliveries.c.guid.in_(list(guids))
        )
        with self._read() as conn:
            return {r.guid: bytes(r.payload) for r in conn.execute(query)}

    def prune_deliveries(self, before: float, batch: int = 5000) -> int:
        """Delete deliveries processed before ``before``, ``batch`` rows per transaction;
        returns how many. Unprocessed ones stay (they are still to be handled)."""
        removed = 0
        while True:
            old = (
                sa.select(deliveries.c.guid)
                .where(deliveries.c.processed_at < before)
                .limit(batch)
                .scalar_subquery()
            )
            with self._write() as conn:
                count = conn.execute(deliveries.delete().where(deliveries.c.guid.in_(old))).rowcount
            removed += count
            if count < batch:
                return removed

    def get_delivery(self, guid: str) -> Delivery | None:
        with self._read() as conn:
            query = sa.select(deliveries).where(deliveries.c.guid == guid)
            row = conn.execute(query).mappings().first()
        return None if row is None else row_to_delivery(row)

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
