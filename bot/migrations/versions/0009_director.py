"""The director: plans and their tasks, comment commands acted on, and pauses (a task's
plan, its planned index and expected files).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("plan_id", sa.String(64)))
        batch.add_column(sa.Column("planned_index", sa.Integer))
        batch.add_column(sa.Column("files", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.create_index("ix_tasks_plan", ["plan_id"])
    with op.batch_alter_table("repos") as batch:
        batch.add_column(sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "plans",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("epic", sa.Integer, nullable=False),
        sa.Column("installation_id", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("guidance", sa.Text, nullable=False, server_default=""),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("request_comment_id", sa.BigInteger),
        sa.Column("replaces", sa.String(64)),
        sa.Column("plan_json", sa.Text),
        sa.Column("errors", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("comment_id", sa.BigInteger),
        sa.Column("approved_by", sa.String(255)),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("completed_at", sa.Double),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_usd", sa.Double),
        sa.Column("dispatches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker", sa.String(200)),
        sa.Column("job_owner", sa.String(200)),
        sa.Column("job_secret_hash", sa.String(64)),
        sa.Column("lease_until", sa.Double),
    )
    op.create_index("ix_plans_epic", "plans", ["repo", "epic"])
    op.create_index("ix_plans_state", "plans", ["state"])
    op.create_table(
        "plan_tasks",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("number", sa.Integer),
        sa.Column("issue_id", sa.BigInteger),
        sa.Column("linked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "commands",
        sa.Column("comment_id", sa.BigInteger, primary_key=True),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("issue", sa.Integer, nullable=False),
        sa.Column("verb", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("outcome", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("commands")
    op.drop_table("plan_tasks")
    op.drop_index("ix_plans_state", table_name="plans")
    op.drop_index("ix_plans_epic", table_name="plans")
    op.drop_table("plans")
    with op.batch_alter_table("repos") as batch:
        batch.drop_column("paused")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_plan")
        batch.drop_column("paused")
        batch.drop_column("files")
        batch.drop_column("planned_index")
        batch.drop_column("plan_id")
