"""Runner-label routing and review feedback on tasks; agent transcripts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("runs_on", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("review_id", sa.BigInteger))
    op.create_table(
        "transcripts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("runner", sa.String(200)),
        sa.Column("agent", sa.String(64)),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_transcripts_task", "transcripts", ["repo", "number"])


def downgrade() -> None:
    op.drop_index("ix_transcripts_task", table_name="transcripts")
    op.drop_table("transcripts")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("review_id")
        batch.drop_column("runs_on")
