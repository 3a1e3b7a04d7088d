"""Shared fixtures.

``store_url`` runs a storage test on SQLite (a file in ``tmp_path``) and on PostgreSQL (a fresh
schema, :func:`tests.harness.postgres.postgres_schema`: skipped when the server is unreachable,
except under CI, where it fails).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.postgres import postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stoneforge.sqlite3'}"
        return
    with postgres_schema() as url:
        yield url
