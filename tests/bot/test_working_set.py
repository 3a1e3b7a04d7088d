"""The bot's hot paths read the working set, not every task ever made.

Merged tasks older than ``merged_retention_s`` (``STONEFORGE_MERGED_RETENTION_S``) leave the
graph and the view refreshes but stay in the store; a blocker among them still counts as done.
"""

from __future__ import annotations

import time

import pydantic
import pytest

from bot.core.model import IssueRef, Task, TaskState
from bot.core.render import StatusView
from bot.service import Bot
from bot.settings import BotSettings

REPO = "octo/demo"
HOUR = 3600.0


def ref(n: int) -> IssueRef:
    return IssueRef(REPO, n)


def test_retention_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    bot: Bot,  # noqa: F811
) -> None:
    pem = bot.settings.private_key

    def settings() -> BotSettings:
        return BotSettings(app_id=1, private_key=pem, webhook_secret="s")

    assert settings().merged_retention_s == 24 * HOUR
    monkeypatch.setenv("STONEFORGE_MERGED_RETENTION_S", "3600")
    assert settings().merged_retention_s == HOUR
    monkeypatch.setenv("STONEFORGE_MERGED_RETENTION_S", "-1")
    with pytest.raises(pydantic.ValidationError, match="merged_retention_s"):
        settings()


def _history(bot: Bot) -> float:  # noqa: F811
    """Task 1 merged two hours ago, task 2 a minute ago; 3 waits on 1, 4 on 2, 5 on 3."""
    now = time.time()
    bot.settings = bot.settings.model_copy(update={"merged_retention_s": HOUR})
    store = bot.store
    for n, merged_at in ((1, now - 2 * HOUR), (2, now - 60)):
        store.upsert_task(
            Task(REPO, n, f"t{n}", installation_id=1, state=TaskState.MERGED, merged_at=merged_at)
        )
    for n, blocker in ((3, 1), (4, 2), (5, 3)):
        store.upsert_task(
            Task(REPO, n, f"t{n}", installation_id=1, blocked_by=(ref(blocker),), created_at=n)
        )
    return now


async def test_graph_leaves_old_merged_tasks_out_and_counts_them_done(
    bot: Bot,  # noqa: F811
) -> None:
    _history(bot)
    tasks, report = await bot.graph()
    assert [t.number for t in tasks] == [2, 3, 4, 5]
    assert report.ready == (ref(3), ref(4))  # 3's blocker left the working set: still done
    assert report.waiting == {ref(5): (ref(3),)}
    assert report.missing == {}
    assert bot.store.get_task(ref(1)) is not None  # kept for reports
    assert [t.number for t in bot.store.list_tasks()] == [1, 2, 3, 4, 5]
    # A longer retention brings it back: the setting decides, read at each refresh.
    bot.settings = bot.settings.model_copy(update={"merged_retention_s": 3 * HOUR})
    tasks, _ = await bot.graph()
    assert [t.number for t in tasks] == [1, 2, 3, 4, 5]


async def test_view_refresh_shows_only_the_working_set(
    bot: Bot,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _history(bot)
    shown: list[StatusView] = []
    monkeypatch.setattr(bot.reporter, "show", lambda view, **_: shown.append(view))
    await bot.refresh_views()
    assert sorted(view.task.number for view in shown) == [2, 3, 4, 5]
    by_number = {view.task.number: view for view in shown}
    assert by_number[3].waiting_on == ()
    assert by_number[3].missing == ()
    assert by_number[5].waiting_on == (ref(3),)


async def test_working_set_names_the_blockers_that_left_it(bot: Bot) -> None:  # noqa: F811
    _history(bot)
    working = await bot.working_set()
    assert [t.number for t in working.tasks] == [2, 3, 4, 5]
    assert working.done == {ref(1)}
