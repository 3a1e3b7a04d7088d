"""A fresh PostgreSQL schema per test.

The server comes from ``STONEFORGE_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); the schema is selected through
``search_path`` and dropped afterwards. When PostgreSQL is unreachable the test is skipped,
except under CI (``CI`` set), where it fails: CI must exercise it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

POSTGRES_URL_ENV = "STONEFORGE_TEST_POSTGRES_URL"
POSTGRES_URL_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def postgres_base_url() -> sa.URL:
    url = sa.make_url(os.environ.get(POSTGRES_URL_ENV) or POSTGRES_URL_DEFAULT)
    if url.drivername == "postgresql":  # psycopg 3 is the driver we install
        url = url.set(drivername="postgresql+psycopg")
    return url


@contextlib.contextmanager
def postgres_schema(prefix: str = "test") -> Iterator[str]:
    """A database URL whose ``search_path`` is a schema made for the caller, dropped after."""
    base = postgres_base_url()
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(
        base,
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        message = (
            f"PostgreSQL not reachable at {base.render_as_string(hide_password=True)}: "
            f"{str(exc.orig or exc).strip()}"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
