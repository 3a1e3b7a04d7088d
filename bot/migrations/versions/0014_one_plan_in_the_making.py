"""One plan being made per epic (requested, planning or filing), enforced by the database: two
replicas taking ``/stoneforge plan`` at once on PostgreSQL could otherwise both start a plan.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None

MAKING = "state IN ('requested', 'planning', 'filing')"


def upgrade() -> None:
    op.create_index(
        "ux_plans_making",
        "plans",
        ["repo", "epic"],
        unique=True,
        postgresql_where=sa.text(MAKING),
        sqlite_where=sa.text(MAKING),
    )


def downgrade() -> None:
    op.drop_index("ux_plans_making", table_name="plans")
