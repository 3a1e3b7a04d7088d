"""Fixtures shared by the conformance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.models.server import ScriptedServer


@pytest.fixture
def served() -> Iterator[list[ScriptedServer]]:
    """Scripted model servers a test starts (its ``serve`` helper appends them), stopped at its
    end."""
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.stop()
