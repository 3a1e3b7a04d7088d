"""Bursts share work: concurrent view refreshes and claims woken together read the tasks once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.core.model import IssueRef, Task
from bot.service import Bot, job_side

pytestmark = pytest.mark.usefixtures("bot")


@pytest.fixture
def counted(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> list[int]:  # noqa: F811
    """Counts ``Bot.graph`` reads; each takes a little while, like a real table read."""
    reads: list[int] = []
    real = bot.views.graph

    async def graph() -> Any:
        reads.append(1)
        await asyncio.sleep(0.05)
        return await real()

    monkeypatch.setattr(bot.views, "graph", graph)  # the dispatcher's reads go through it too
    return reads


async def test_concurrent_refreshes_share_passes_and_each_sees_its_change(
    bot: Bot,  # noqa: F811
    counted: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[IssueRef] = []
    monkeypatch.setattr(bot.reporter, "show", lambda view, **_: shown.append(view.task.ref))
    await asyncio.gather(*(bot.refresh_views() for _ in range(6)))
    assert len(counted) == 1  # all six asked before the pass began

    async def late() -> None:
        await asyncio.sleep(0.02)  # the first pass is reading now
        await asyncio.gather(*(bot.refresh_views() for _ in range(5)))

    await asyncio.gather(bot.refresh_views(), late())
    assert len(counted) == 3  # that pass, and one more for the five that came meanwhile
    bot.store.create_task(Task(repo="octo/demo", number=5, title="t", installation_id=1))
    await bot.refresh_views()  # nothing running: its own pass, which sees the new task
    assert len(counted) == 4
    assert shown == [IssueRef("octo/demo", 5)]


async def test_claims_woken_by_one_change_read_the_tasks_once(
    bot: Bot,  # noqa: F811
    counted: list[int],
) -> None:
    dispatcher = job_side(bot)
    claims = [asyncio.create_task(dispatcher.claim("r", f"w{k}", wait_s=0.3)) for k in range(4)]
    await asyncio.sleep(0.1)  # all four are waiting
    first = len(counted)
    assert first == 1  # they asked together
    bot.ready_changed.set()  # one change wakes all four
    assert await asyncio.gather(*claims) == [None] * 4  # nothing to claim
    assert len(counted) - first == 1


async def test_deliveries_run_side_by_side_but_in_order_per_issue(
    bot: Bot,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    pauses = {"a": 0.2, "b": 0.05, "c": 0.0}

    async def handle(event: str, payload: dict[str, Any]) -> None:
        name = payload["name"]
        log.append(f"start {name}")
        await asyncio.sleep(pauses[name])
        log.append(f"end {name}")

    monkeypatch.setattr(bot.intake, "handle", handle)
    for guid, number in (("a", 1), ("b", 2), ("c", 1)):
        body = {"name": guid, "issue": {"number": number}, "repository": {"full_name": "o/r"}}
        bot.queue.put_nowait((guid, "issues", json.dumps(body).encode()))
    worker = asyncio.create_task(bot.process_forever())
    try:
        for _ in range(100):
            if "end c" in log:
                break
            await asyncio.sleep(0.02)
    finally:
        worker.cancel()
    assert log.index("end b") < log.index("end a")  # issue 2 did not wait for issue 1
    assert log.index("start c") > log.index("end a")  # issue 1's deliveries stay in order
