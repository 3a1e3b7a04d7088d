"""Production state: installed repositories, daily agent spend, steward locks, task metrics.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("cost_usd", sa.Double))
        batch.add_column(sa.Column("ready_at", sa.Double))
        batch.add_column(sa.Column("comment_id", sa.BigInteger))
    op.create_table(
        "repos",
        sa.Column("repo", sa.String(200), primary_key=True),
        sa.Column("installation_id", sa.BigInteger, nullable=False),
        sa.Column("default_branch", sa.String(255), nullable=False),
        sa.Column("labels_ready", sa.Boolean, nullable=False),
        sa.Column("config_text", sa.Text),
        sa.Column("config_sha", sa.String(64)),
        sa.Column("config_error", sa.Text),
    )
    op.create_index("ix_repos_installation", "repos", ["installation_id"])
    op.create_table(
        "costs",
        sa.Column("repo", sa.String(200), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("usd", sa.Double, nullable=False),
    )
    op.create_table(
        "locks",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("locks")
    op.drop_table("costs")
    op.drop_index("ix_repos_installation", table_name="repos")
    op.drop_table("repos")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("comment_id")
        batch.drop_column("ready_at")
        batch.drop_column("cost_usd")
