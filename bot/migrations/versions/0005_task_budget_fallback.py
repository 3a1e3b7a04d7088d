"""A task's spend when a maintainer last restarted it (its budget counts from there), and the
agents whose provider's rate limit holds it (a fallback agent may take it meanwhile), and a
digest of its status as last written to GitHub (a restarted bot does not write it again).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("cost_at_restart_usd", sa.Double))
        batch.add_column(sa.Column("rate_limits", sa.Text))
        batch.add_column(sa.Column("status_digest", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("status_digest")
        batch.drop_column("rate_limits")
        batch.drop_column("cost_at_restart_usd")
