"""Initial schema: webhook deliveries and tasks (what the pre-Alembic code created).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("guid", sa.String(64), primary_key=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64)),
        sa.Column("installation_id", sa.BigInteger),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("processed_at", sa.Double),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_deliveries_unprocessed", "deliveries", ["processed_at", "received_at"])
    op.create_table(
        "tasks",
        sa.Column("repo", sa.String(200), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("issue_id", sa.BigInteger, nullable=False),
        sa.Column("installation_id", sa.BigInteger),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("blocked_by", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200)),
        sa.Column("branch", sa.String(255)),
        sa.Column("pr_number", sa.Integer),
        sa.Column("head_sha", sa.String(64)),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("dispatched_at", sa.Double),
        sa.Column("agent_seconds", sa.Double),
        sa.Column("merged_at", sa.Double),
        sa.Column("merge_sha", sa.String(64)),
        sa.Column("lease_until", sa.Double),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_tasks_state", "tasks", ["state"])


def downgrade() -> None:
    op.drop_index("ix_tasks_state", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("ix_deliveries_unprocessed", table_name="deliveries")
    op.drop_table("deliveries")
