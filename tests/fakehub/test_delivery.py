from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakehub.delivery import Faults, WebhookSender, sign

SECRET = "s3cret"


class Receiver:
    """A local HTTP endpoint that records every request it gets."""

    def __init__(self, *, keep_alive: bool = False, hang_up: bool = False) -> None:
        """``keep_alive``: HTTP/1.1 connections kept open; ``hang_up``: each is then closed
        after one answer without saying so, as a server does with an idle connection."""
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.peers: list[tuple[str, int]] = []  # the client address of each request
        self.status = 202
        self.slow: dict[str, float] = {}  # delivery guid -> seconds to wait before answering
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.slow.get(self.headers["X-GitHub-Delivery"], 0.0))
                receiver.requests.append((dict(self.headers.items()), body))
                receiver.peers.append(self.client_address)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if hang_up:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def guids(self) -> list[str]:
        return [headers["X-GitHub-Delivery"] for headers, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    s = WebhookSender(app_id=77, hook_id=9)
    yield s
    s.close()


PAYLOAD = {"action": "opened", "installation": {"id": 5}, "repository": {"id": 42}, "n": "é"}


def test_headers_and_signature(receiver: Receiver, sender: WebhookSender) -> None:
    guid = sender.send(receiver.url, SECRET, "issues", PAYLOAD)
    assert sender.wait_idle(5)
    [(headers, body)] = receiver.requests
    assert json.loads(body) == PAYLOAD
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected == sign(SECRET, body)
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert headers["X-Hub-Signature"] == sha1
    assert headers["X-GitHub-Event"] == "issues"
    assert headers["X-GitHub-Delivery"] == guid
    assert headers["X-GitHub-Hook-ID"] == "9"
    assert headers["X-GitHub-Hook-Installation-Target-Type"] == "integration"
    assert headers["X-GitHub-Hook-Installation-Target-ID"] == "77"
    assert headers["User-Agent"] == "GitHub-Hookshot/fakehub"
    assert headers["Content-Type"] == "application/json"
    [record] = sender.records()
    assert (record.id, record.guid, record.event, record.action) == (1, guid, "issues", "opened")
    assert (record.installation_id, record.repository_id) == (5, 42)
    assert (record.status, record.status_code, record.redelivery) == ("OK", 202, False)
    assert record.payload == PAYLOAD


def test_one_worker_delivers_in_order(receiver: Receiver) -> None:
    sender = WebhookSender(workers=1)
    try:
        guids = [sender.send(receiver.url, SECRET, "push", {"i": i}) for i in range(20)]
        assert sender.wait_idle(5)
        assert receiver.guids() == guids
    finally:
        sender.close()


def test_a_slow_answer_does_not_hold_back_the_next_deliveries(
    receiver: Receiver, sender: WebhookSender
) -> None:
    receiver.slow["slow"] = 3.0
    sender.send(receiver.url, SECRET, "push", {"i": 0}, guid="slow")
    quick = [sender.send(receiver.url, SECRET, "push", {"i": i}) for i in range(1, 6)]
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline and set(quick) - set(receiver.guids()):
        time.sleep(0.01)
    assert set(quick) <= set(receiver.guids())  # delivered while the first still waits
    assert "slow" not in receiver.guids()
    assert sender.wait_idle(5)
    assert sorted(receiver.guids()) == sorted(["slow", *quick])


def test_failures_are_recorded_not_retried(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.status = 500
    sender.send(receiver.url, SECRET, "issues", PAYLOAD)
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    sender.send(dead, SECRET, "issues", PAYLOAD)
    assert sender.wait_idle(5)
    first, second = sorted(sender.records(), key=lambda r: r.status_code is None)
    assert (first.status, first.status_code) == ("failed: HTTP 500", 500)
    assert second.status.startswith("failed: ConnectError")
    assert second.status_code is None
    assert len(receiver.requests) == 1


def test_redeliver_keeps_guid(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.status = 500
    guid = sender.send(receiver.url, SECRET, "issues", PAYLOAD)
    assert sender.wait_idle(5)
    receiver.status = 200
    assert sender.redeliver(1) == guid
    assert sender.wait_idle(5)
    assert receiver.guids() == [guid, guid]
    second = sender.records()[1]
    assert (second.redelivery, second.status) == (True, "OK")
    with pytest.raises(KeyError):
        sender.redeliver(99)


def test_drop_all(receiver: Receiver, sender: WebhookSender) -> None:
    sender.faults.drop_rate = 1.0
    for i in range(3):
        sender.send(receiver.url, SECRET, "issues", {"i": i})
    assert sender.wait_idle(5)
    assert receiver.requests == []
    assert [r.status for r in sender.records()] == ["dropped"] * 3


def test_duplicate_all(receiver: Receiver, sender: WebhookSender) -> None:
    sender.faults.duplicate_rate = 1.0
    guid = sender.send(receiver.url, SECRET, "issues", PAYLOAD)
    assert sender.wait_idle(5)
    assert receiver.guids() == [guid, guid]
    assert receiver.requests[0][1] == receiver.requests[1][1]


def test_reorder_window_shuffles(receiver: Receiver) -> None:
    sender = WebhookSender(Faults(reorder_window=8, seed=1))
    try:
        guids = [sender.send(receiver.url, SECRET, "push", {"i": i}) for i in range(8)]
        assert sender.wait_idle(5)
        assert sorted(receiver.guids()) == sorted(guids)
        assert receiver.guids() != guids
        # a partly filled window is flushed after a quiet spell
        late = sender.send(receiver.url, SECRET, "push", {"i": 99})
        assert sender.wait_idle(5)
        assert receiver.guids()[-1] == late
    finally:
        sender.close()


def test_reorder_rate_sends_a_held_delivery_after_the_next(receiver: Receiver) -> None:
    sender = WebhookSender(Faults(reorder_rate=1.0, seed=1), workers=1)
    try:
        guids = [sender.send(receiver.url, SECRET, "push", {"i": i}) for i in range(4)]
        assert sender.wait_idle(5)
        assert receiver.guids() == [guids[1], guids[0], guids[3], guids[2]]
        late = sender.send(receiver.url, SECRET, "push", {"i": 99})  # held, then flushed alone
        assert sender.wait_idle(5)
        assert receiver.guids()[-1] == late
    finally:
        sender.close()


def test_latency_delays_delivery(receiver: Receiver) -> None:
    sender = WebhookSender(Faults(latency_s=0.3))
    try:
        started = time.monotonic()
        sender.send(receiver.url, SECRET, "issues", PAYLOAD)
        assert not sender.wait_idle(0.1)
        assert sender.wait_idle(5)
        assert time.monotonic() - started >= 0.3
        assert len(receiver.requests) == 1
    finally:
        sender.close()


def test_close_drains_queue(receiver: Receiver) -> None:
    sender = WebhookSender()
    for i in range(5):
        sender.send(receiver.url, SECRET, "push", {"i": i})
    sender.close()
    assert len(receiver.requests) == 5
    with pytest.raises(RuntimeError):
        sender.send(receiver.url, SECRET, "push", {})


@pytest.mark.parametrize("hang_up", [False, True])
def test_deliveries_reuse_a_connection_and_survive_a_receiver_hanging_up(hang_up: bool) -> None:
    receiver = Receiver(keep_alive=True, hang_up=hang_up)
    sender = WebhookSender(workers=1)
    try:
        for n in range(4):
            sender.send(receiver.url, SECRET, "issues", {**PAYLOAD, "n": n})
            assert sender.wait_idle(5)
            time.sleep(0.05)  # the hang-up has happened before the next one is sent
        assert [r.status for r in sender.records()] == ["OK"] * 4
        assert [json.loads(body)["n"] for _, body in receiver.requests] == [0, 1, 2, 3]
        assert len(set(receiver.peers)) == (4 if hang_up else 1)
    finally:
        sender.close()
        receiver.close()
