"""The Alembic history in ``bot/migrations`` against the SQLAlchemy metadata in ``bot.store``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from setuptools import find_packages

import bot
from bot import migrations
from bot.core.model import IssueRef, TaskState
from bot.store import Store, metadata

HEAD = ScriptDirectory(str(migrations.SCRIPT_LOCATION)).get_current_head()


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(store_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


def schema_diffs(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current_revision(conn)


def table_names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def test_history_is_linear_and_head_is_known() -> None:
    script = ScriptDirectory(str(migrations.SCRIPT_LOCATION))
    assert script.get_heads() == ["0015"]
    assert [r.revision for r in script.walk_revisions("base", "heads")] == [
        "0015",
        "0014",
        "0013",
        "0012",
        "0011",
        "0010",
        "0009",
        "0008",
        "0007",
        "0006",
        "0005",
        "0004",
        "0003",
        "0002",
        "0001",
    ]


def test_migrations_are_packaged() -> None:
    root = Path(bot.__file__).resolve().parent.parent
    packages = find_packages(str(root), include=["bot*"])
    assert {"bot.migrations", "bot.migrations.versions"} <= set(packages)


def test_store_migrates_a_fresh_database_to_head(store_url: str, engine: sa.Engine) -> None:
    assert revision(engine) is None
    Store(store_url).close()
    assert revision(engine) == HEAD
    assert table_names(engine) == {"alembic_version", *metadata.tables}
    assert schema_diffs(engine) == []
    Store(store_url).close()  # a second open is a no-op
    assert revision(engine) == HEAD


def test_downgrade_to_base_then_upgrade_again(store_url: str, engine: sa.Engine) -> None:
    Store(store_url).close()
    with engine.begin() as conn:
        migrations.downgrade(conn, "0001")
    assert revision(engine) == "0001"
    assert table_names(engine) == {"alembic_version", "deliveries", "tasks"}
    with engine.begin() as conn:
        migrations.downgrade(conn, "base")
    assert revision(engine) is None
    assert table_names(engine) <= {"alembic_version"}
    with engine.begin() as conn:
        migrations.upgrade(conn)
    assert revision(engine) == HEAD
    assert schema_diffs(engine) == []
    store = Store(store_url)
    try:
        store.upsert_repo("octo/demo", 1, default_branch="main")
        assert [r.repo for r in store.repos()] == ["octo/demo"]
    finally:
        store.close()


# The schema exactly as the pre-Alembic code's ``metadata.create_all`` made it.
legacy = sa.MetaData()
legacy_deliveries = sa.Table(
    "deliveries",
    legacy,
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
legacy_tasks = sa.Table(
    "tasks",
    legacy,
    sa.Column("repo", sa.String(200), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("issue_id", sa.BigInteger, nullable=False, default=0),
    sa.Column("installation_id", sa.BigInteger),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("blocked_by", sa.Text, nullable=False, default="[]"),
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
    sa.Index("ix_tasks_state", "state"),
)


def test_a_create_all_database_is_adopted_not_recreated(store_url: str, engine: sa.Engine) -> None:
    legacy.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            legacy_deliveries.insert().values(
                guid="g1", event="issues", payload=b"{}", received_at=1.0
            )
        )
        conn.execute(
            legacy_tasks.insert().values(
                repo="octo/demo", number=5, title="old task", state="in_review", pr_number=17
            )
        )
    assert revision(engine) is None

    store = Store(store_url)
    try:
        assert revision(engine) == HEAD
        assert schema_diffs(engine) == []
        assert store.record_delivery("g1", "issues", None, None, b"", now=2.0) is False
        task = store.get_task(IssueRef("octo/demo", 5))
        assert task is not None
        assert (task.title, task.state, task.pr_number) == ("old task", TaskState.IN_REVIEW, 17)
        assert (task.cost_usd, task.ready_at, task.comment_id) == (None, None, None)
        store.update_task(task.ref, cost_usd=0.5, comment_id=99)
        migrated = store.get_task(task.ref)
        assert migrated is not None
        assert migrated.cost_usd == 0.5
    finally:
        store.close()
