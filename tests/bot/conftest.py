"""A running world for bot tests: fakehub, the bot in-process, a runner the test drives.

The world itself is :class:`tests.harness.World`; a module overrides ``bot_env`` to give the
bot extra settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import CI, World, open_world


@pytest.fixture
def bot_env() -> dict[str, Any]:
    """Extra BotSettings for the ``world`` fixture; override in a test module."""
    return {}


@pytest.fixture
def world(tmp_path: Path, bot_env: dict[str, Any]) -> Iterator[World]:
    with open_world(tmp_path, bot=True, bot_env=bot_env, ci_command=CI, required=["ci"]) as w:
        yield w
