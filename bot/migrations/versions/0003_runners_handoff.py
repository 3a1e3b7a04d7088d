"""Registered runners, registration tokens, and task fields for handoff and rate limits.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("labeled_by", sa.String(255)))
        batch.add_column(sa.Column("not_before", sa.Double))
        batch.add_column(sa.Column("agent", sa.String(64)))
    op.create_table(
        "runners",
        sa.Column("runner_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_seen", sa.Double),
    )
    op.create_table(
        "registration_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("used_at", sa.Double),
    )


def downgrade() -> None:
    op.drop_table("registration_tokens")
    op.drop_table("runners")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("agent")
        batch.drop_column("not_before")
        batch.drop_column("labeled_by")
