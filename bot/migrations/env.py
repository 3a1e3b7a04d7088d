"""Alembic environment: run the migrations on the connection handed over by ``bot.migrations``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bot.store import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "bot.migrations runs on a connection passed in code: use bot.migrations.upgrade(conn)"
    )
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
