"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records deliveries."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness.waiting import Changes, wait_until


@dataclass
class Hook:
    event: str
    delivery: str
    signature: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


class Receiver:
    """Answers every POST with 202 and keeps it in ``hooks``; ``cond`` is notified per hook."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                hook = Hook(
                    self.headers.get("x-github-event", ""),
                    self.headers.get("x-github-delivery", ""),
                    self.headers.get("x-hub-signature-256", ""),
                    body,
                )
                with receiver.cond:
                    receiver.hooks.append(hook)
                    receiver.cond.notify_all()
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.cond:
            return len(self.hooks)

    def wait_for(self, pred: Callable[[Hook], bool], timeout: float = 10.0) -> Hook:
        """The first hook ``pred`` accepts, woken by each delivery."""

        def found() -> Hook | None:
            with self.cond:
                return next((hook for hook in self.hooks if pred(hook)), None)

        changes = Changes(self.cond, self.count)
        return wait_until(found, timeout, "a matching webhook", woken_by=changes)

    def of(self, event: str, action: str | None = None) -> list[Hook]:
        with self.cond:
            return [
                h
                for h in self.hooks
                if h.event == event and (action is None or h.payload.get("action") == action)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
