"""Fixtures for bot tests.

``world``: fakehub, the bot in-process, a runner the test drives (:class:`tests.harness.World`;
a module overrides ``bot_env`` to give the bot extra settings). ``bot`` and ``github``: the bot's
parts over a typed fake GitHub (:class:`tests.bot.fakegithub.RecordingGitHub`), no server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.service import Bot
from bot.settings import BotSettings
from bot.store import Store
from tests.bot.fakegithub import RecordingGitHub
from tests.harness import CI, World, open_world


@pytest.fixture
def bot_env() -> dict[str, Any]:
    """Extra BotSettings for the ``world`` fixture; override in a test module."""
    return {}


@pytest.fixture
def world(tmp_path: Path, bot_env: dict[str, Any]) -> Iterator[World]:
    with open_world(tmp_path, bot=True, bot_env=bot_env, ci_command=CI, required=["ci"]) as w:
        yield w


@pytest.fixture
def github() -> RecordingGitHub:
    fake = RecordingGitHub()
    fake.perms["lead"] = "admin"
    return fake


@pytest.fixture
def bot(tmp_path: Path, github: RecordingGitHub) -> Iterator[Bot]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings = BotSettings(app_id=1, private_key=pem, webhook_secret="s")
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    instance = Bot(settings, store, github)
    instance.bot_login = "stoneforge[bot]"
    try:
        yield instance
    finally:
        store.close()
