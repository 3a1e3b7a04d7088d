"""The ``stoneforge`` check run on each agent pull request's head: the steward's state and reason
in words, written off the steward's path.

The steward says what it wants shown (``want``) on every pass; a check run is written only when
what it shows changed in substance (``bot.core.steward.check_state``: the action, what it waits
for and which check, not the words, which change with every merge ahead of it), and one
background writer does the writes, the latest wish per pull request, one at a time. Measured:
writing on every change of the words, awaited inside the pass, made ``bench/dispatch.py``'s p50
650 ms against 175 ms without the check (sixty pull requests re-titled after every merge). A
failure to write is logged: the check informs people, and the steward never waits on it. A head
that moved gets its former head's run, left in progress, completed as ``neutral`` (superseded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass

from bot.adapters.github import GitHubError
from bot.core.model import Task
from bot.core.steward import STEWARD_CHECK
from bot.ports import CheckPort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Wish:
    task: Task
    pr: int
    sha: str
    conclusion: str | None
    title: str
    state: Hashable  # what must change for the run to be rewritten


@dataclass(frozen=True)
class _Shown:
    sha: str
    run_id: int
    conclusion: str | None
    state: Hashable


class StewardChecks:
    def __init__(self, github: CheckPort) -> None:
        self.github = github
        self._shown: dict[tuple[str, int], _Shown] = {}
        self._wished: dict[tuple[str, int], _Wish] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def want(
        self,
        task: Task,
        pr: int,
        sha: str,
        conclusion: str | None,
        title: str,
        state: Hashable,
    ) -> None:
        """Show ``title`` (and ``conclusion``; None: in progress) on the pull request's head,
        unless the run there already shows the same ``state``."""
        key = (task.repo, pr)
        shown = self._shown.get(key)
        if shown is not None and (shown.sha, shown.conclusion, shown.state) == (
            sha,
            conclusion,
            state,
        ):
            self._wished.pop(key, None)
            return
        self._wished[key] = _Wish(task, pr, sha, conclusion, title, state)
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    def forget(self, repo: str, live: set[int | None]) -> None:
        """Pull requests of ``repo`` no longer in review: nothing more to show on them."""
        self._shown = {k: v for k, v in self._shown.items() if k[0] != repo or k[1] in live}

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._wished:
                key, wish = next(iter(self._wished.items()))
                del self._wished[key]
                try:
                    await self._write(key, wish)
                except GitHubError as exc:
                    log.warning("steward_check_failed %s: %s", wish.task.ref, exc)
                except Exception:  # noqa: BLE001 - the writer must outlive any one failure
                    log.exception("steward_check_crashed")

    async def _write(self, key: tuple[str, int], wish: _Wish) -> None:
        shown, task = self._shown.get(key), wish.task
        inst = task.installation_id or 0
        if shown is not None and shown.sha != wish.sha and shown.conclusion is None:
            title = f"superseded: the head of pull request #{wish.pr} moved to {wish.sha[:7]}"
            await self.github.write_check(
                inst,
                task.repo,
                shown.sha,
                name=STEWARD_CHECK,
                conclusion="neutral",
                title=title,
                summary=f"{task.ref}: {title}",
                run_id=shown.run_id,
            )
        run_id = await self.github.write_check(
            inst,
            task.repo,
            wish.sha,
            name=STEWARD_CHECK,
            conclusion=wish.conclusion,
            title=wish.title,
            summary=f"{task.ref}, pull request #{wish.pr}: {wish.title}",
            run_id=shown.run_id if shown is not None and shown.sha == wish.sha else None,
        )
        self._shown[key] = _Shown(wish.sha, run_id, wish.conclusion, wish.state)
