"""Runner registration: a one-time token becomes the runner's own token; only hashes are stored."""

from __future__ import annotations

import hashlib
import sqlite3

import httpx
import pytest

from bot.core.protocol import ClaimAnswer, ClaimRequest, Job
from bot.runner_api import new_registration_token
from bot.store import Store
from runner.registration import RegistrationError, load_credentials, register
from tests.harness import World


def test_registration_token_becomes_a_runner_token_once(world: World) -> None:
    db = world.tmp / "bot.db"
    store = Store(f"sqlite:///{db}")
    try:
        reg = new_registration_token(store, ttl_s=60)
    finally:
        store.close()
    config = world.tmp / "runner.json"
    creds = register(
        world.bot_url, reg, name="gpu-box", labels=["linux"], capacity=2, config_path=config
    )
    assert creds.runner_token.startswith("sfrun_")
    assert load_credentials(config) == creds
    assert config.stat().st_mode & 0o077 == 0, "credentials are private to their owner"

    with pytest.raises(RegistrationError):
        register(world.bot_url, reg, name="again", labels=[], capacity=1, config_path=config)

    headers = {"Authorization": f"Bearer {creds.runner_token}"}
    resp = httpx.post(f"{world.bot_url}/runner/claim", json={"wait_s": 0}, headers=headers)
    assert resp.status_code == 204
    bad = httpx.post(
        f"{world.bot_url}/runner/claim", json={}, headers={"Authorization": "Bearer sfrun_x"}
    )
    assert bad.status_code == 401

    with sqlite3.connect(db) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM runners")]
        reg_rows = [row[0] for row in conn.execute("SELECT token_hash FROM registration_tokens")]
    assert stored == [hashlib.sha256(creds.runner_token.encode()).hexdigest()]
    assert reg_rows == [hashlib.sha256(reg.encode()).hexdigest()]
    dump = db.read_bytes()
    assert creds.runner_token.encode() not in dump
    assert reg.encode() not in dump


def test_registered_runner_claims_work_under_its_own_name(world: World) -> None:
    store = Store(f"sqlite:///{world.tmp / 'bot.db'}")
    try:
        reg = new_registration_token(store, ttl_s=60)
    finally:
        store.close()
    creds = register(
        world.bot_url, reg, name="box-7", labels=[], capacity=1, config_path=world.tmp / "r.json"
    )
    issue = world.file("Named work")
    world.label(issue["number"])
    headers = {"Authorization": f"Bearer {creds.runner_token}"}

    def claim() -> Job | None:
        resp = httpx.post(
            f"{world.bot_url}/runner/claim",
            json=ClaimRequest(worker="w0", wait_s=1).model_dump(mode="json"),
            headers=headers,
            timeout=10,
        )
        return (
            ClaimAnswer.model_validate_json(resp.content).job if resp.status_code == 200 else None
        )

    from tests.harness import wait_until

    job = wait_until(claim, what="job for the registered runner")
    assert job.issue == issue["number"]
    assert world.tasks()[issue["number"]]["worker"] == "box-7/w0"
