"""Work started off the caller's path that must not vanish silently.

``Background.spawn(coro)`` runs ``coro`` as a task kept until it ends (so it is not collected
mid-flight, and shutdown can cancel what is left: ``running()``). A ``GitHubError`` is logged
as a warning (GitHub said no; periodic work such as reconciliation repairs it), anything else
with its traceback. The dispatcher, the director's plan jobs and the opening of pull requests
(``bot/results.py``) share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from bot.adapters.github import GitHubError

log = logging.getLogger(__name__)


class Background:
    def __init__(self, name: str) -> None:
        self.name = name  # in the log lines: "<name>_call_failed", "<name>_call_crashed"
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await coro
            except GitHubError as exc:
                log.warning("%s_call_failed: %s", self.name, exc)
            except Exception:  # noqa: BLE001 - background work must not vanish silently
                log.exception("%s_call_crashed", self.name)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def running(self) -> set[asyncio.Task[None]]:
        return {t for t in self._tasks if not t.done()}
