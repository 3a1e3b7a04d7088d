"""The review agent's memory per task: the head a review job was last sent for (never reviewed
twice) and the review rounds sent back to the agent (never one more after a restart).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("agent_review_head", sa.String(64)))
        batch.add_column(
            sa.Column("agent_review_rounds", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("agent_review_rounds")
        batch.drop_column("agent_review_head")
