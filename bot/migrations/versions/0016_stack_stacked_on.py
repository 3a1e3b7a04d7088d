"""Stacked dispatch: the blocker a task's work started on, and that blocker's head then.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("stacked_on", sa.Integer))
        batch.add_column(sa.Column("stacked_sha", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("stacked_sha")
        batch.drop_column("stacked_on")
