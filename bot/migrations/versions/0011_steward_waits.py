"""The wait each task in review is in, since when, and whether its pull request was told.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "steward_waits",
        sa.Column("repo", sa.String(200), primary_key=True),
        sa.Column("issue", sa.Integer, primary_key=True),
        sa.Column("wait_key", sa.Text, nullable=False),
        sa.Column("since", sa.Double, nullable=False),
        sa.Column("told", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("steward_waits")
