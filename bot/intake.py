"""Webhook intake: verified deliveries are stored durably, acknowledged, then handled in order.

Deliveries arriving together are stored in one transaction (group commit); each caller answers
only after its own delivery is committed. A handler's failure is recorded on the delivery
(reconciliation repairs what it missed); a restart queues what was stored but not handled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.logs import bind
from bot.ports import DeliveryLog
from bot.pull_cache import PullCache
from bot.signals import Identity
from bot.store import NewDelivery

log = logging.getLogger(__name__)

INTAKE_WORKERS = 8  # deliveries handled at once


def order_key(event: str, payload: Mapping[str, Any]) -> tuple[object, ...]:
    """What a delivery must stay in order with: its issue or pull request, else its
    repository's deliveries of the same event (installations: the installation)."""
    where = payload.get("repository")
    repo = where.get("full_name") if isinstance(where, Mapping) else None
    for field in ("issue", "pull_request"):
        item = payload.get(field)
        if isinstance(item, Mapping) and isinstance(item.get("number"), int):
            return ("issue", repo, item["number"])
    if repo is None:
        inst = payload.get("installation")
        return (event, inst.get("id") if isinstance(inst, Mapping) else None)
    return (event, repo)


Handle = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class Intake:
    """Stores verified deliveries (group commit), queues them, and hands each to ``handle``."""

    def __init__(
        self,
        store: DeliveryLog,
        pulls: PullCache,
        identity: Identity,
        handle: Handle,
        events: frozenset[str],
    ) -> None:
        self.store = store
        self.events = events  # what ``handle`` acts on; other deliveries are only kept
        self.pulls = pulls
        self.identity = identity
        self.handle = handle
        self.queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self._pending_writes: list[tuple[NewDelivery, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def ingest(self, guid: str, event: str, body: bytes) -> bool:
        """Store a verified delivery durably and queue it; False for a duplicate delivery id.

        Deliveries arriving together are stored in one transaction (group commit); each
        caller still answers only after its own delivery is committed.
        """
        handled = event in self.events
        action: str | None = None
        inst: int | None = None
        if handled:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                raw_action = payload.get("action")
                raw_inst = (payload.get("installation") or {}).get("id")
                action = raw_action if isinstance(raw_action, str) else None
                inst = raw_inst if isinstance(raw_inst, int) else None
                self.pulls.note(event, payload, guid)  # before anything else: look afresh
                who = payload.get("sender")
                sender = who.get("login") if isinstance(who, dict) else None
                if self.identity.is_self(sender):
                    # Our own labels and comments echoing back: kept, never acted on (``handle``
                    # would ignore them), so they cost one write and no trip through the queue.
                    handled = False
        row = NewDelivery(guid, event, action, inst, body, time.time(), processed=not handled)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_writes.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        fresh = await done
        if fresh and handled:
            self.queue.put_nowait((guid, event, body))
        return fresh

    async def _write_pending(self) -> None:
        while self._pending_writes:
            batch, self._pending_writes = self._pending_writes, []
            try:
                stored = await asyncio.to_thread(
                    self.store.record_deliveries, [row for row, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - every waiting request must get an answer
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), fresh in zip(batch, stored, strict=True):
                if not done.done():
                    done.set_result(fresh)

    async def resume_unprocessed(self) -> None:
        """After a restart, queue every delivery stored but not yet processed."""
        for delivery in await asyncio.to_thread(self.store.unprocessed_deliveries, 10_000):
            self.queue.put_nowait((delivery.guid, delivery.event, delivery.payload))

    async def process_forever(self, workers: int = INTAKE_WORKERS) -> None:
        """Handle queued deliveries, several at once; those about one issue (or, for other
        events, one repository and event) one at a time, in the order they arrived.

        Handling waits mostly on GitHub; one at a time, a burst of labels would queue behind
        each other's reads. GitHub does not promise delivery order anyway: every handler
        re-reads what it acts on.
        """
        locks: dict[tuple[object, ...], tuple[asyncio.Lock, list[int]]] = {}

        async def work() -> None:
            while True:
                guid, event, body = await self.queue.get()
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                payload = payload if isinstance(payload, dict) else {}
                key = order_key(event, payload)
                lock, users = locks.setdefault(key, (asyncio.Lock(), [0]))
                users[0] += 1
                try:
                    async with lock:  # FIFO: taken in the order the deliveries were dequeued
                        with bind(delivery_id=guid):
                            try:
                                await self._process(guid, event, payload)
                            except Exception:  # noqa: BLE001 - one bad delivery must not stop intake
                                log.exception("delivery_failed")
                finally:
                    users[0] -= 1
                    if users[0] == 0:
                        locks.pop(key, None)

        await asyncio.gather(*(work() for _ in range(max(1, workers))))

    async def _process(self, guid: str, event: str, payload: dict[str, Any]) -> None:
        error = None
        try:
            await self.handle(event, payload)
        except Exception as exc:  # noqa: BLE001 - recorded on the delivery; reconciliation repairs
            error = f"{type(exc).__name__}: {exc}"
            log.exception("delivery_handler_failed")
        await asyncio.to_thread(self.store.mark_processed, guid, time.time(), error)
