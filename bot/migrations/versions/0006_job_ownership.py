"""A job belongs to the runner that claimed it: each task counts its dispatches (the job id's
number, never reused) and its review rounds, and keeps its running job's owner and the SHA-256
of the claim secret only that owner received.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("dispatches", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("job_owner", sa.String(200)))
        batch.add_column(sa.Column("job_secret_hash", sa.String(64)))
        batch.add_column(sa.Column("review_rounds", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("revised_review_id", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("revised_review_id")
        batch.drop_column("review_rounds")
        batch.drop_column("job_secret_hash")
        batch.drop_column("job_owner")
        batch.drop_column("dispatches")
