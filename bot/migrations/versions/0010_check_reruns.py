"""The steward's re-runs of red required checks (one per head and check), and the flakes.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_reruns",
        sa.Column("repo", sa.String(200), primary_key=True),
        sa.Column("head_sha", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("check_run_id", sa.BigInteger, nullable=False),
        sa.Column("requested_at", sa.Double, nullable=False),
        sa.Column("flaky", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("check_reruns")
