"""What people see on GitHub: one state label and exactly one status comment per task issue.

Updates run in the background, one worker per issue, and are coalesced: a worker lets a change
settle for ``settle_s`` (half a second) before writing, and when a task changes several times
meanwhile or while an update is in flight, only the newest view is written. A task that is
queued and dispatched at once shows "running" straight away: no label flips on the issue's
timeline, no webhooks for them, fewer writes against GitHub's secondary rate limits. Every write is
idempotent (labels are compared first, against the issue's labels the first time; the comment
is found again by its hidden marker), so a restart or a repeated update changes nothing that is
already right.

With a store, the comment links every transcript the task's agents left (``bot.transcripts``);
they are looked up when the comment is written, so each update shows the ones uploaded so far.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
from dataclasses import dataclass

from bot import transcripts
from bot.adapters.github import GitHubError
from bot.core.model import IssueRef, TaskState
from bot.core.render import STATUS_MARKER, StatusView, render_status
from bot.ports import LabelPort
from bot.store import Store

log = logging.getLogger(__name__)

#: label -> (colour, description); created in each repository on first use.
STATE_LABELS: dict[str, tuple[str, str]] = {
    "stoneforge:queued": ("c5def5", "Stoneforge: waiting for blockers or a free runner"),
    "stoneforge:running": ("fbca04", "Stoneforge: an agent is working on this"),
    "stoneforge:in-review": ("1d76db", "Stoneforge: pull request open, waiting for checks"),
    "stoneforge:merging": ("0e8a16", "Stoneforge: the steward is merging the pull request"),
    "stoneforge:blocked": ("b60205", "Stoneforge: dependency cycle or missing dependency"),
    "stoneforge:needs-human": ("d93f0b", "Stoneforge: failed, a person needs to look"),
}
TRIGGER_LABEL_STYLE = ("0e8a16", "Hand this issue to Stoneforge's agents")
WRITE_CONCURRENCY = 2  # issues whose label and status comment are being written at once


def state_label(view: StatusView, merging: bool = False) -> str | None:
    state = view.task.state
    if view.cycle or view.missing:
        return "stoneforge:blocked"
    if state == TaskState.IN_REVIEW and merging:
        return "stoneforge:merging"
    return {
        TaskState.QUEUED: "stoneforge:queued",
        TaskState.RUNNING: "stoneforge:running",
        TaskState.IN_REVIEW: "stoneforge:in-review",
        TaskState.FAILED: "stoneforge:needs-human",
    }.get(state)


@dataclass
class _Pending:
    view: StatusView
    merging: bool
    comment: bool


class Reporter:
    def __init__(
        self,
        github: LabelPort,
        store: Store | None = None,
        public_url: str = "",
        *,
        settle_s: float = 0.5,
    ) -> None:
        self.github = github
        self.settle_s = settle_s
        self.store = store
        self.public_url = public_url  # where transcript links point; "" shows none
        self._pending: dict[IssueRef, _Pending] = {}
        self._workers: dict[IssueRef, asyncio.Task[None]] = {}
        self._shown: dict[IssueRef, tuple[str | None, str]] = {}  # what we last wrote
        self._noted: dict[IssueRef, frozenset[str]] = {}  # labels read with the issue
        # GitHub asks integrations to send writes serially, not concurrently (secondary rate
        # limits); a burst of tasks must not flood it, nor take the CPU from dispatching.
        self._writing = asyncio.Semaphore(WRITE_CONCURRENCY)

    def note_labels(self, ref: IssueRef, labels: tuple[str, ...] | list[str]) -> None:
        """The issue's labels as just read from GitHub: spares the first update reading them."""
        if ref not in self._shown:
            self._noted[ref] = frozenset(labels)

    def show(self, view: StatusView, *, merging: bool = False, comment: bool = True) -> None:
        """Schedule the issue's label and status comment to match ``view``."""
        ref = view.task.ref
        self._pending[ref] = _Pending(view, merging, comment)
        worker = self._workers.get(ref)
        if worker is None or worker.done():
            self._workers[ref] = asyncio.get_running_loop().create_task(self._drain(ref))

    async def _drain(self, ref: IssueRef) -> None:
        while ref in self._pending:
            if self.settle_s > 0:
                await asyncio.sleep(self.settle_s)  # later changes replace this one
            async with self._writing:  # and while waiting for a turn
                pending = self._pending.pop(ref)
                try:
                    await self._apply(pending)
                except GitHubError as exc:
                    log.warning("status_update_failed %s: %s", ref, exc)
                except Exception:  # noqa: BLE001 - reporting must never take the bot down
                    log.exception("status_update_crashed %s", ref)

    async def _apply(self, pending: _Pending) -> None:
        task = pending.view.task
        inst = task.installation_id
        if inst is None:
            return
        stored = None
        if self.store is not None:
            # The view may have waited (settling, or behind another write); another replica
            # sharing the store may have moved the task on meanwhile. Never write an old state
            # over a newer one: whoever made the newer state shows it.
            stored = await asyncio.to_thread(self.store.get_task, task.ref)
            if stored is not None and (stored.state, stored.attempt) != (task.state, task.attempt):
                log.debug("status_update_stale %s", task.ref)
                return
        wanted = state_label(pending.view, pending.merging)
        view = pending.view
        if pending.comment and self.store is not None and self.public_url:
            links = await asyncio.to_thread(
                functools.partial(transcripts.links, self.store, self.public_url, task.ref)
            )
            view = dataclasses.replace(view, transcripts=links)
        body = render_status(view)
        last = self._shown.get(task.ref)
        digest = hashlib.sha256(f"{wanted}\n{body}".encode()).hexdigest()[:32]
        if last is None and pending.comment and stored is not None:
            if stored.status_digest == digest:  # written before this process started
                self._shown[task.ref] = (wanted, body)
                return
        if last is None or last[0] != wanted:
            # The first time (e.g. after a restart) the issue's labels are read once, rather
            # than removing every other state label blindly; then only our last one changes.
            if last is not None:
                present: set[str] | frozenset[str] = {last[0]} if last[0] else set()
            elif task.ref in self._noted:
                present = self._noted.pop(task.ref)
            else:
                present = await self.github.issue_labels(inst, task.ref)
            if wanted and wanted not in present:
                await self.github.add_labels(inst, task.ref, [wanted])
            for label in STATE_LABELS:
                if label != wanted and label in present:
                    await self.github.remove_label(inst, task.ref, label)
        if pending.comment and (last is None or last[1] != body):
            await self.github.upsert_comment(inst, task.ref, STATUS_MARKER, body)
        self._shown[task.ref] = (wanted, body if pending.comment else (last[1] if last else ""))
        if pending.comment and self.store is not None and stored is not None:
            if stored.status_digest != digest:
                await asyncio.to_thread(
                    functools.partial(self.store.update_task, task.ref, status_digest=digest)
                )

    async def idle(self) -> None:
        """Wait until every scheduled update has been written (tests, shutdown)."""
        while any(not w.done() for w in self._workers.values()):
            await asyncio.gather(*self._workers.values(), return_exceptions=True)
