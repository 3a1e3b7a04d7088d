"""Fixtures of the runner's end-to-end tests: a bare origin to clone and the bot's side of the
runner protocol, served (tests.harness.runner_bot)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness.runner_bot import Bot, bot_server, make_origin


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return make_origin(tmp_path)


@pytest.fixture
async def bot() -> AsyncIterator[tuple[Bot, str]]:
    async with bot_server() as served:
        yield served
