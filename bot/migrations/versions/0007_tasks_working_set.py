"""An index on the tasks' (state, merged_at): the working set (every task not merged, and the
merged ones merged since a cutoff) is read without walking every task ever made.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_state_merged_at", "tasks", ["state", "merged_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_state_merged_at", table_name="tasks")
