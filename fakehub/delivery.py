"""Webhook deliveries for fakehub: sign, post from background threads, record every attempt.

Deliveries start in the order they were queued, several at a time (``workers``, default 4): like
GitHub's hookshot, a slow answer to one delivery does not hold back the next, and GitHub does
not promise the order in which they arrive. ``workers=1`` sends them strictly one after another.
Failures are recorded and never retried (GitHub does not retry either); ``redeliver``
sends a stored delivery again with the same GUID. ``Faults`` switches on latency, drops,
duplicates and reordering at runtime, for testing how the receiver copes.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_Endpoint = tuple[str, str | None, int | None]  # scheme, host, port
REORDER_FLUSH_S = 0.2  # a partly filled reorder window is flushed after this much quiet


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _sign_sha1(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


@dataclass
class Faults:
    latency_s: float = 0.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_window: int = 0
    #: the share of deliveries held back and sent after the next one (reordered one by one)
    reorder_rate: float = 0.0
    seed: int | None = None


@dataclass
class DeliveryRecord:
    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    delivered_at: float
    status_code: int | None
    status: str  # "OK", "dropped", "failed: <reason>"
    redelivery: bool
    duration: float
    request_headers: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Job:
    url: str
    secret: str
    event: str
    payload: dict[str, Any]
    guid: str
    redelivery: bool


class WebhookSender:
    """Queue webhook deliveries and send them from a single background thread."""

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        timeout: float = 10.0,
        hook_id: int = 1,
        app_id: int = 1,
        workers: int = 4,
    ) -> None:
        self.faults = faults or Faults()
        self.hook_id = hook_id
        self.app_id = app_id
        self._rng = random.Random(self.faults.seed)
        self._timeout = timeout
        self._local = threading.local()  # each worker keeps its own keep-alive connection
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._held: list[_Job] = []
        self._late: _Job | None = None  # held back by ``reorder_rate``: goes after the next one
        self._busy = 0  # deliveries (or reordered batches) being sent now
        self._closed = False
        self._records: list[DeliveryRecord] = []
        self._jobs: dict[int, _Job] = {}
        self._threads = [
            threading.Thread(target=self._loop, name=f"fakehub-webhooks-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    # -- public -----------------------------------------------------------------------------

    def send(
        self,
        url: str,
        secret: str,
        event: str,
        payload: dict[str, Any],
        *,
        guid: str | None = None,
        redelivery: bool = False,
    ) -> str:
        job = _Job(url, secret, event, payload, guid or str(uuid.uuid4()), redelivery)
        with self._cond:
            if self._closed:
                raise RuntimeError("WebhookSender is closed")
            self._queue.append(job)
            self._cond.notify_all()
        return job.guid

    def redeliver(self, record_id: int, *, url: str | None = None) -> str:
        """Send a recorded delivery again, same GUID; to ``url`` when the hook has moved since."""
        with self._cond:
            job = self._jobs.get(record_id)
        if job is None:
            raise KeyError(record_id)
        return self.send(
            url or job.url, job.secret, job.event, job.payload, guid=job.guid, redelivery=True
        )

    def records(self) -> list[DeliveryRecord]:
        with self._cond:
            return list(self._records)

    def wait_idle(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._held or self._late or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    # -- worker -----------------------------------------------------------------------------

    def _next_batch(self) -> list[_Job] | None:
        """Wait for work; returns the jobs to send now (None when closed and drained)."""
        with self._cond:
            while True:
                window = self.faults.reorder_window
                while self._queue and (window > 1 and len(self._held) < window):
                    self._held.append(self._queue.popleft())
                if self._held and (window <= 1 or len(self._held) >= window or self._closed):
                    batch, self._held = self._held, []
                    self._rng.shuffle(batch)
                    self._busy += 1
                    return batch
                if self._queue:
                    job = self._queue.popleft()
                    if self._late is None and self._rng.random() < self.faults.reorder_rate:
                        self._late = job  # sent right after the next delivery
                        continue
                    late, self._late = self._late, None
                    self._busy += 1
                    return [job] if late is None else [job, late]
                if self._late is not None:  # nothing came after it: send it after a quiet spell
                    if not self._closed and (self._cond.wait(REORDER_FLUSH_S) or self._queue):
                        continue
                    late, self._late = self._late, None
                    if late is None:  # another worker sent it meanwhile
                        continue
                    self._busy += 1
                    return [late]
                if self._closed:
                    return None
                if self._held:  # a partly filled window: flush it after a quiet spell
                    if not self._cond.wait(REORDER_FLUSH_S) and not self._queue:
                        batch, self._held = self._held, []
                        self._rng.shuffle(batch)
                        self._busy += 1
                        return batch
                else:
                    self._cond.wait()

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            for job in batch:
                try:
                    self._deliver(job)
                except Exception:  # never let the worker die
                    log.exception("webhook delivery %s crashed", job.guid)
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()
        for conn in self._conns().values():
            conn.close()

    def _deliver(self, job: _Job) -> None:
        faults = self.faults
        if faults.latency_s > 0:
            time.sleep(faults.latency_s)
        body = json.dumps(job.payload).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/fakehub",
            "X-GitHub-Event": job.event,
            "X-GitHub-Delivery": job.guid,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(self.app_id),
            "X-Hub-Signature": _sign_sha1(job.secret, body),
            "X-Hub-Signature-256": sign(job.secret, body),
        }
        with self._cond:
            dropped = self._rng.random() < faults.drop_rate
            copies = 2 if self._rng.random() < faults.duplicate_rate else 1
        if dropped:
            self._record(job, headers, None, "dropped", 0.0)
            return
        for _ in range(copies):
            self._post(job, headers, body)

    def _post(self, job: _Job, headers: dict[str, str], body: bytes) -> None:
        started = time.monotonic()
        try:
            code = self._request(job.url, headers, body)
        except (OSError, http.client.HTTPException) as exc:
            kind = "Timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            if isinstance(exc, ConnectionRefusedError):
                kind = "ConnectError"
            self._record(job, headers, None, f"failed: {kind}: {exc}", time.monotonic() - started)
            return
        status = "OK" if 200 <= code < 300 else f"failed: HTTP {code}"
        self._record(job, headers, code, status, time.monotonic() - started)

    def _request(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """POST over this worker's keep-alive connection (the standard library's client: the
        deliveries share fakehub's process, and so its GIL, with the API it serves)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            conn, reused = self._connection(key)
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(key)
                if reused and attempt == 1:
                    continue  # the receiver closed an idle connection: once more, on a new one
                raise
            except BaseException:
                self._drop(key)
                raise
            if response.will_close:
                self._drop(key)
            return response.status
        raise AssertionError("unreachable")

    def _conns(self) -> dict[_Endpoint, http.client.HTTPConnection]:
        """This worker thread's open connections."""
        if not hasattr(self._local, "conns"):
            self._local.conns = {}
        conns: dict[_Endpoint, http.client.HTTPConnection] = self._local.conns
        return conns

    def _connection(self, key: _Endpoint) -> tuple[http.client.HTTPConnection, bool]:
        """This worker's connection to ``key``, and whether it has served a request before."""
        conns = self._conns()
        if key in conns:
            return conns[key], True
        scheme, host, port = key
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conns[key] = kind(host or "localhost", port, timeout=self._timeout)
        return conns[key], False

    def _drop(self, key: _Endpoint) -> None:
        conn = self._conns().pop(key, None)
        if conn is not None:
            conn.close()

    def _record(
        self, job: _Job, headers: dict[str, str], code: int | None, status: str, duration: float
    ) -> None:
        payload: dict[str, Any] = job.payload
        installation = payload.get("installation") or {}
        repository = payload.get("repository") or {}
        with self._cond:
            record = DeliveryRecord(
                id=len(self._records) + 1,
                guid=job.guid,
                event=job.event,
                action=payload.get("action"),
                installation_id=installation.get("id"),
                repository_id=repository.get("id"),
                delivered_at=time.time(),
                status_code=code,
                status=status,
                redelivery=job.redelivery,
                duration=round(duration, 4),
                request_headers=dict(headers),
                payload=payload,
            )
            self._records.append(record)
            self._jobs[record.id] = job
