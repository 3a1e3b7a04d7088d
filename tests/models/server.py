"""The HTTP plumbing every scripted model server shares.

A ``ScriptedServer`` listens on an ephemeral loopback port in a thread, records every request
(method, path, headers, parsed JSON body) and asks its subclass for an ``Answer``: a status,
headers and body chunks, each chunk written and flushed as it comes, so a subclass streams SSE by
yielding events and stalls by sleeping between them. Responses close the connection (no
keep-alive), which every HTTP client here handles. Paths a subclass does not know get 404 and are
kept in ``unknown`` so a test can say what the CLI asked for.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.models.scenario import Playbook, Turn


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it is not JSON

    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = ()

    @classmethod
    def json(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
        return cls(
            status,
            {"content-type": "application/json", **(headers or {})},
            [json.dumps(body).encode()],
        )


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``data`` as JSON unless it is already a string)."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


class ScriptedServer:
    """Base class: subclasses implement ``answer(request)``; use as a context manager."""

    def __init__(self, script: Playbook, *, model: str = "test-model") -> None:
        self.script = script
        self.model = model
        self.requests: list[Recorded] = []
        self.unknown: list[Recorded] = []
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- what subclasses implement -------------------------------------------------------------

    def answer(self, request: Recorded) -> Answer:
        raise NotImplementedError

    # -- what subclasses and tests use ---------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_turn(self, prompt: str = "", round: int = 0) -> Turn:
        """The playbook's turn for a call; ``prompt``/``round`` as ``Playbook`` says (each API's
        server extracts them from its own request shape)."""
        return self.script.next_turn(prompt, round)

    def pause(self, seconds: float) -> None:
        """Sleep in a handler (a stalled stream), cut short when the server stops."""
        self._stop.wait(seconds)

    def not_found(self, request: Recorded) -> Answer:
        self.unknown.append(request)
        return Answer.json(404, {"error": {"message": f"no route {request.path}"}})

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            request = Recorded(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            server.requests.append(request)
            answer = server.answer(request)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in answer.chunks:
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the CLI gave up on the stream (a timeout, a kill): nothing to answer

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


def wait_for(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
