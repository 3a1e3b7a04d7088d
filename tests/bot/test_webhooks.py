"""Webhook intake: signature verification, durable storage, de-duplication, fast acknowledgement."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.core.model import IssueRef, TaskState
from bot.settings import BotSettings
from bot.signature import sign, verify
from tests.bot.fakegithub import FakeGitHub

SECRET = "It's a Secret to Everybody"


def test_signature_matches_githubs_documented_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(SECRET, b"Hello, World!") == expected
    assert verify(SECRET, b"Hello, World!", expected)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=" + hmac.new(SECRET.encode(), b"Hello, World!", hashlib.sha1).hexdigest(),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ],
)
def test_signature_rejects_missing_wrong_and_sha1(header: str | None) -> None:
    assert not verify(SECRET, b"Hello, World!", header)


def test_signature_rejects_altered_body() -> None:
    assert not verify(SECRET, b"Hello, World?", sign(SECRET, b"Hello, World!"))


@pytest.fixture
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
def client(tmp_path: Path, pem: str, github: FakeGitHub) -> Iterator[TestClient]:
    settings = BotSettings(
        app_id=1,
        private_key=pem,
        webhook_secret=SECRET,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        runner_token="runner-secret",
        reconcile_interval_s=3600,
    )
    app = create_app(settings, github=github)
    with TestClient(app) as test_client:
        yield test_client


def _post(
    client: TestClient,
    event: str,
    payload: dict,
    *,
    guid: str = "d-1",
    signature: str | None = "ok",
    body: bytes | None = None,
):
    raw = body if body is not None else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid,
        "Content-Type": "application/json",
    }
    if signature == "ok":
        headers["X-Hub-Signature-256"] = sign(SECRET, json.dumps(payload).encode())
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/webhooks/github", content=raw, headers=headers)


def _labeled(number: int, sender: str = "lead") -> dict:
    return {
        "action": "labeled",
        "issue": {"number": number},
        "label": {"name": "agent-ready"},
        "repository": {"full_name": "octo/demo"},
        "installation": {"id": 7},
        "sender": {"login": sender, "type": "User"},
    }


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_valid_delivery_is_acknowledged_stored_and_becomes_a_task(
    client: TestClient, github: FakeGitHub
) -> None:
    github.add_issue("octo/demo", 5)
    github.perms["lead"] = "write"
    resp = _post(client, "issues", _labeled(5))
    assert resp.status_code == 202
    store = client.app.state.bot.store
    _wait_for(lambda: store.get_task(IssueRef("octo/demo", 5)) is not None)
    assert store.get_task(IssueRef("octo/demo", 5)).state == TaskState.QUEUED
    assert store.delivery_count() == 1


@pytest.mark.parametrize(
    ("signature", "body"),
    [
        (None, None),
        ("sha256=" + "1" * 64, None),
        ("sha1=abc", None),
        ("ok", b'{"action": "tampered"}'),
    ],
    ids=["missing", "wrong", "sha1-only", "body-altered"],
)
def test_forged_deliveries_get_401_and_are_not_stored(client: TestClient, signature, body) -> None:
    resp = _post(client, "issues", _labeled(5), signature=signature, body=body)
    assert resp.status_code == 401
    assert client.app.state.bot.store.delivery_count() == 0


def test_duplicate_delivery_is_stored_and_processed_once(
    client: TestClient, github: FakeGitHub
) -> None:
    github.add_issue("octo/demo", 5)
    github.perms["lead"] = "admin"
    first = _post(client, "issues", _labeled(5), guid="same")
    second = _post(client, "issues", _labeled(5), guid="same")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["duplicate"] is False
    assert second.json()["duplicate"] is True
    store = client.app.state.bot.store
    _wait_for(lambda: store.get_task(IssueRef("octo/demo", 5)) is not None)
    assert store.delivery_count() == 1
    assert [c for c in github.calls if c[0] == "issue"].count(
        ("issue", (IssueRef("octo/demo", 5),))
    ) == 1


def test_unknown_event_is_acknowledged_and_ignored(client: TestClient) -> None:
    resp = _post(client, "marketplace_purchase", {"action": "purchased"}, guid="u-1")
    assert resp.status_code == 202
    store = client.app.state.bot.store
    _wait_for(lambda: not store.unprocessed_deliveries())
    assert store.list_tasks() == []


def test_label_from_user_without_write_access_is_removed_with_a_comment(
    client: TestClient, github: FakeGitHub
) -> None:
    github.add_issue("octo/demo", 9)
    github.perms["drive-by"] = "read"
    assert _post(client, "issues", _labeled(9, sender="drive-by"), guid="p-1").status_code == 202
    _wait_for(lambda: any(c[0] == "comment" for c in github.calls))
    assert ("remove_label", (IssueRef("octo/demo", 9), "agent-ready")) in github.calls
    assert client.app.state.bot.store.get_task(IssueRef("octo/demo", 9)) is None


def test_oversized_body_gets_413(client: TestClient) -> None:
    app_settings_limit = 25 * 1024 * 1024
    resp = client.post(
        "/webhooks/github",
        content=b"x",
        headers={
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "big",
            "Content-Length": str(app_settings_limit + 1),
        },
    )
    assert resp.status_code == 413


def test_runner_api_refuses_unknown_tokens(client: TestClient) -> None:
    assert client.post("/runner/claim", json={}).status_code == 401
    assert (
        client.post("/runner/claim", json={}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    ok = client.post(
        "/runner/claim", json={"wait_s": 0}, headers={"Authorization": "Bearer runner-secret"}
    )
    assert ok.status_code == 204


def test_our_own_events_are_stored_as_processed_and_never_queued(
    client: TestClient, github: FakeGitHub
) -> None:
    github.add_issue("octo/demo", 6)
    bot = client.app.state.bot
    bot.bot_login = "stoneforge[bot]"
    queued: list[str] = []
    real_put = bot.queue.put_nowait
    bot.queue.put_nowait = lambda item: (queued.append(item[0]), real_put(item))[1]
    own = _labeled(6, sender="stoneforge[bot]")
    assert _post(client, "issues", own, guid="own-1").status_code == 202
    assert bot.store.delivery_count() == 1  # kept, e.g. for redelivery checks
    assert bot.store.unprocessed_deliveries() == []
    assert queued == []
    assert _post(client, "issues", _labeled(6), guid="theirs-1").status_code == 202
    assert queued == ["theirs-1"]


def test_webhook_path_takes_only_post_and_other_paths_reach_the_app(client: TestClient) -> None:
    # bot/webhook_ingress.py answers the webhook path itself, in front of FastAPI's routes.
    resp = client.get("/webhooks/github")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    assert client.get("/healthz").json() == {"status": "ok"}
    body = b'{"zen": "hi"}'
    resp = client.post(
        "/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(SECRET, body)},
    )
    assert resp.status_code == 400
    assert "X-GitHub-Delivery" in resp.json()["message"]


def test_api_tasks_lists_the_working_set_unless_asked_for_all(client: TestClient) -> None:
    from bot.core.model import Task

    store = client.app.state.bot.store  # type: ignore[attr-defined]
    now = time.time()
    store.upsert_task(
        Task("octo/demo", 1, "old", state=TaskState.MERGED, merged_at=now - 10 * 86400)
    )
    store.upsert_task(Task("octo/demo", 2, "new", state=TaskState.MERGED, merged_at=now))
    store.upsert_task(Task("octo/demo", 3, "open", state=TaskState.QUEUED))
    assert {t["issue"] for t in client.get("/api/tasks").json()} == {2, 3}
    assert {t["issue"] for t in client.get("/api/tasks?all=true").json()} == {1, 2, 3}
