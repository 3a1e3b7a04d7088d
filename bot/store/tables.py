"""The store's tables (SQLAlchemy Core). Alembic migrations in ``bot/migrations`` make them."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from bot.core.model import Task

metadata = sa.MetaData()

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("guid", sa.String(64), primary_key=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64)),
    sa.Column("installation_id", sa.BigInteger),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("processed_at", sa.Double),
    sa.Column("error", sa.Text),
    sa.Index("ix_deliveries_unprocessed", "processed_at", "received_at"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("issue_id", sa.BigInteger, nullable=False, default=0),
    sa.Column("installation_id", sa.BigInteger),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("blocked_by", sa.Text, nullable=False, default="[]"),  # JSON ["owner/repo#N", ...]
    sa.Column("priority", sa.Integer, nullable=False, default=2),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("worker", sa.String(200)),
    sa.Column("branch", sa.String(255)),
    sa.Column("pr_number", sa.Integer),
    sa.Column("head_sha", sa.String(64)),
    sa.Column("created_at", sa.Double, nullable=False, default=0.0),
    sa.Column("dispatched_at", sa.Double),
    sa.Column("agent_seconds", sa.Double),
    sa.Column("merged_at", sa.Double),
    sa.Column("merge_sha", sa.String(64)),
    sa.Column("lease_until", sa.Double),
    sa.Column("detail", sa.Text),
    sa.Column("cost_usd", sa.Double),
    sa.Column("ready_at", sa.Double),
    sa.Column("comment_id", sa.BigInteger),
    sa.Column("labeled_by", sa.String(255)),
    sa.Column("not_before", sa.Double),
    sa.Column("agent", sa.String(64)),
    sa.Column("runs_on", sa.Text, nullable=False, default="[]"),  # JSON list of runner labels
    sa.Column("review_id", sa.BigInteger),
    sa.Column("cost_at_restart_usd", sa.Double),
    sa.Column("rate_limits", sa.Text),  # JSON [[agent, until], ...]
    sa.Column("status_digest", sa.String(64)),
    # The task's jobs (not fields of ``Task``: only the runner API reads them). Every claim
    # counts one more dispatch (a relabel never resets it: a job id is never reused), and
    # keeps the claiming runner and the SHA-256 of the claim secret only it received.
    sa.Column("dispatches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("job_owner", sa.String(200)),
    sa.Column("job_secret_hash", sa.String(64)),
    sa.Column("review_rounds", sa.Integer, nullable=False, server_default="0"),
    # resolve_conflicts jobs that failed (``Task.resolve_failures``)
    sa.Column("resolve_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revised_review_id", sa.BigInteger),  # the review the last round answered
    sa.Column("reason", sa.Text),  # JSON of bot.core.lifecycle's typed reason
    sa.Column("plan_id", sa.String(64)),  # the director's plan it belongs to
    sa.Column("planned_index", sa.Integer),
    sa.Column("files", sa.Text, nullable=False, server_default="[]"),  # JSON list of paths
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    # rounds an agent was sent back to fix red required checks
    sa.Column("fix_rounds", sa.Integer, nullable=False, server_default="0"),
    # the head the review agent was last sent to review, and its rounds sent back to the agent
    sa.Column("agent_review_head", sa.String(64)),
    sa.Column("agent_review_rounds", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_tasks_state", "state"),
    sa.Index("ix_tasks_state_merged_at", "state", "merged_at"),  # the working set
    sa.Index("ix_tasks_plan", "plan_id"),
)

repos = sa.Table(
    "repos",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("installation_id", sa.BigInteger, nullable=False),
    sa.Column("default_branch", sa.String(255), nullable=False),
    sa.Column("labels_ready", sa.Boolean, nullable=False, default=False),
    sa.Column("config_text", sa.Text),
    sa.Column("config_sha", sa.String(64)),
    sa.Column("config_error", sa.Text),
    # ``/stoneforge pause`` on the repository's control issue: nothing of it is dispatched
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_repos_installation", "installation_id"),
)

costs = sa.Table(
    "costs",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # "YYYY-MM-DD"
    sa.Column("usd", sa.Double, nullable=False),
)

locks = sa.Table(  # SQLite steward locks; PostgreSQL uses advisory locks instead
    "locks",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

runners = sa.Table(
    "runners",
    metadata,
    sa.Column("runner_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("labels", sa.Text, nullable=False, default="[]"),  # JSON list
    sa.Column("capacity", sa.Integer, nullable=False, default=1),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double),
)

registration_tokens = sa.Table(
    "registration_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("used_at", sa.Double),
)

transcripts = sa.Table(  # agent transcripts, served at /transcripts/<id> and linked on GitHub
    "transcripts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # unguessable: the link is the capability
    sa.Column("repo", sa.String(200), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("runner", sa.String(200)),
    sa.Column("agent", sa.String(64)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),  # gzip of the (redacted) JSONL text
    sa.Index("ix_transcripts_task", "repo", "number"),
)


plans = sa.Table(  # the director's plans (bot/director/), one per /stoneforge plan or replan
    "plans",
    metadata,
    sa.Column("plan_id", sa.String(64), primary_key=True),
    sa.Column("repo", sa.String(200), nullable=False),
    sa.Column("epic", sa.Integer, nullable=False),  # the issue it breaks down
    sa.Column("installation_id", sa.BigInteger, nullable=False),
    # requested -> planning -> drafted (filed, labeled stoneforge:draft) -> approved ->
    # completed; or invalid / failed / replaced (a replan superseded it) / cancelled
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("guidance", sa.Text, nullable=False, server_default=""),
    sa.Column("requested_by", sa.String(255), nullable=False),
    sa.Column("request_comment_id", sa.BigInteger),
    sa.Column("replaces", sa.String(64)),  # the plan a replan supersedes
    sa.Column("plan_json", sa.Text),  # the validated plan (bot.core.plan.Plan)
    sa.Column("errors", sa.Text),  # JSON list: why the plan was refused
    sa.Column("detail", sa.Text),
    sa.Column("comment_id", sa.BigInteger),  # the plan comment on the epic
    sa.Column("approved_by", sa.String(255)),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("completed_at", sa.Double),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cost_usd", sa.Double),  # the plan job's own spend
    # the plan job, held like a task's (bot/job_claims.py): dispatch count, owner, secret
    sa.Column("dispatches", sa.Integer, nullable=False, server_default="0"),
    sa.Column("worker", sa.String(200)),
    sa.Column("job_owner", sa.String(200)),
    sa.Column("job_secret_hash", sa.String(64)),
    sa.Column("lease_until", sa.Double),
    sa.Index("ix_plans_epic", "repo", "epic"),
    sa.Index("ix_plans_state", "state"),
    # one plan being made per epic, whatever replica asks (bot/store/plans.py request_plan)
    sa.Index(
        "ux_plans_making",
        "repo",
        "epic",
        unique=True,
        postgresql_where=sa.text("state IN ('requested', 'planning', 'filing')"),
        sqlite_where=sa.text("state IN ('requested', 'planning', 'filing')"),
    ),
)

plan_tasks = sa.Table(  # each task of a plan, and the issue filed for it
    "plan_tasks",
    metadata,
    sa.Column("plan_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("number", sa.Integer),  # the filed issue; null until filed
    sa.Column("issue_id", sa.BigInteger),
    sa.Column("linked", sa.Boolean, nullable=False, server_default=sa.false()),  # sub-issue + deps
    sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),  # by a replan
)

commands = sa.Table(  # comment commands acted on: each comment id once (an edit is no command)
    "commands",
    metadata,
    sa.Column("comment_id", sa.BigInteger, primary_key=True),
    sa.Column("repo", sa.String(200), nullable=False),
    sa.Column("issue", sa.Integer, nullable=False),
    sa.Column("verb", sa.String(32), nullable=False),
    sa.Column("sender", sa.String(255), nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("outcome", sa.Text),
)


check_reruns = sa.Table(  # the steward's re-runs of red required checks: once per head and check
    "check_reruns",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("head_sha", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("check_run_id", sa.BigInteger, nullable=False),  # the run that was re-run
    sa.Column("requested_at", sa.Double, nullable=False),
    sa.Column("flaky", sa.Boolean, nullable=False, server_default=sa.false()),  # recorded
)

steward_waits = sa.Table(  # each task's current wait in review (bot.core.liveness.Waiting)
    "steward_waits",
    metadata,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("issue", sa.Integer, primary_key=True),
    sa.Column("wait_key", sa.Text, nullable=False),
    sa.Column("since", sa.Double, nullable=False),
    sa.Column("told", sa.Boolean, nullable=False, server_default=sa.false()),  # commented
)

#: Task fields, each stored in the ``tasks`` column of the same name.
TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))
