"""Alembic migrations for ``bot.store`` (the schema's history; ``versions/`` holds the steps).

There is no ``alembic.ini``: :func:`alembic_config` builds the configuration in code, so the
migrations run from an installed package. Every command runs on a connection the caller
passes in (``config.attributes["connection"]``); ``env.py`` never opens its own.

A database made by the pre-Alembic code (``metadata.create_all``: the tables exist but there
is no ``alembic_version`` table) is stamped at ``0001`` and then upgraded, never recreated.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent
#: The revision whose schema equals what the pre-Alembic ``create_all`` code made.
LEGACY_REVISION = "0001"


def alembic_config(connection: Connection) -> Config:
    """An Alembic ``Config`` whose commands run on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or ``None`` (empty or pre-Alembic database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the schema to ``revision``, adopting a pre-Alembic database first.

    Runs inside the caller's transaction; the caller serialises concurrent upgrades (see
    ``Store.__init__``).
    """
    if current_revision(connection) is None and sa.inspect(connection).has_table("tasks"):
        command.stamp(alembic_config(connection), LEGACY_REVISION)
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)
