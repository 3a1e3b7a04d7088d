"""Handled webhook deliveries are kept for ``delivery_retention_s``, then deleted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pydantic
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.service import Bot
from bot.settings import BotSettings
from bot.store import Store
from tests.bot.fakegithub import FakeGitHub

DAY = 24 * 3600.0


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_reconciliation_prunes_handled_deliveries_past_their_retention(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    settings = BotSettings(
        app_id=1, private_key=_pem(), webhook_secret="s", delivery_retention_s=4 * DAY
    )
    bot = Bot(settings, store, FakeGitHub())
    now = time.time()
    for guid, age in (("five-days", 5 * DAY), ("three-days", 3 * DAY)):
        store.record_delivery(guid, "issues", "opened", 1, b"{}", now=now - age)
        store.mark_processed(guid, now=now - age)
    store.record_delivery("never-handled", "issues", "opened", 1, b"{}", now=now - 9 * DAY)
    try:
        assert asyncio.run(bot.prune_deliveries()) == 1
        assert store.get_delivery("five-days") is None
        assert store.get_delivery("three-days") is not None
        assert store.get_delivery("never-handled") is not None
    finally:
        store.close()


def test_retention_is_never_shorter_than_githubs_redelivery_window() -> None:
    with pytest.raises(pydantic.ValidationError, match="delivery_retention_s"):
        BotSettings(app_id=1, private_key="k", webhook_secret="s", delivery_retention_s=DAY)
