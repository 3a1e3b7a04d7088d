"""What the bot remembers of its pull requests' trips through GitHub's merge queue.

REST pull requests do not say whether they are queued, so the steward keeps what GitHub told
it: the enqueue it made (``enqueued``), the merge group built for it (``merge_group``
``checks_requested``: the group's head, whose checks decide), and why it left the queue
(``pull_request`` ``dequeued`` with ``reason``; a ``merge_group`` ``destroyed`` with
``dequeued`` when that delivery was lost). ``bot.core.merge_queue`` decides from these notes.

``QueueSteward`` is the steward's part that acts on a queue base: it enqueues, reads a red
group's checks, and does what follows a merge the queue made.

``QueueSteward`` is the steward's part that acts on a queue base: it enqueues, reads a red
group's checks, and does what follows a merge the queue made.

Deliveries are noted where they arrive (``bot.handlers.merge_queue``) and, for another bot
replica's, when the steward catches up with the store (``bot.steward``); noting twice is
harmless. The notes live in memory: after a restart an enqueued pull request is enqueued again
(GitHub answers that it already is), and a red group's pull request goes once more through the
queue, whose red group sends it back again. Never merged red either way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.adapters.github import GitHubError
from bot.core.merge_queue import QueueNote, parse_group_ref
from bot.core.model import IssueRef, Task
from bot.core.steward import PullSnapshot, red_checks
from bot.events import Envelope, MergeGroupEvent, PullRequestEvent

if TYPE_CHECKING:  # (bot.signals holds the notes: imported for types only)
    from bot.metrics import BotMetrics
    from bot.ports import PullPort
    from bot.pull_cache import PullCache
    from bot.repos import Repos
    from bot.signals import Signals
    from bot.views import TaskViews

log = logging.getLogger(__name__)

_MAX_KEPT = 10_000


class QueueNotes:
    def __init__(self) -> None:
        self._notes: dict[tuple[str, int], QueueNote] = {}

    def get(self, repo: str, number: int) -> QueueNote | None:
        return self._notes.get((repo, number))

    def enqueued(self, repo: str, number: int, head: str) -> None:
        """The bot enqueued ``number`` at ``head`` (GitHub accepted the request)."""
        self._put(repo, number, QueueNote(head, "enqueued"))

    def refused(self, repo: str, number: int, head: str, message: str) -> None:
        """GitHub would not enqueue ``number`` at ``head``."""
        self._put(repo, number, QueueNote(head, "dequeued", "REFUSED", message=message))

    def red(self, repo: str, number: int, checks: tuple[str, ...]) -> None:
        """The dequeued group's red required checks, once read: a group dequeued for no
        known reason (its ``dequeued`` delivery lost) with red checks went red."""
        note = self.get(repo, number)
        if note is not None:
            reason = note.reason or ("CI_FAILURE" if checks else "")
            self._put(repo, number, dataclasses.replace(note, red=checks, reason=reason))

    def note(self, evt: Envelope) -> None:
        """Note a ``merge_group`` or ``pull_request.dequeued`` delivery (parsed)."""
        repo = evt.repo
        if repo is None:
            return
        if isinstance(evt, MergeGroupEvent) and evt.merge_group is not None:
            parsed = parse_group_ref(evt.merge_group.head_ref or "")
            sha = evt.merge_group.head_sha
            if parsed is None or sha is None:
                return
            _, number, head = parsed
            note = self.get(repo, number)
            if evt.action == "checks_requested":
                if note is None or note.head_sha != head or note.state == "enqueued":
                    self._put(repo, number, QueueNote(head, "enqueued", group_sha=sha))
            elif evt.action == "destroyed" and evt.reason == "dequeued":
                # Only when the pull request's own ``dequeued`` (with its reason) is missing.
                if note is not None and note.head_sha == head and note.state == "enqueued":
                    self._put(repo, number, QueueNote(head, "dequeued", "", group_sha=sha))
        elif isinstance(evt, PullRequestEvent) and evt.action == "dequeued":
            pr, sha = evt.pull_number, evt.head_sha
            if pr is None or sha is None:
                return
            held = self.get(repo, pr)
            group = held.group_sha if held is not None and held.head_sha == sha else None
            self._put(repo, pr, QueueNote(sha, "dequeued", evt.reason or "", group_sha=group))

    def _put(self, repo: str, number: int, note: QueueNote) -> None:
        if len(self._notes) >= _MAX_KEPT:
            del self._notes[next(iter(self._notes))]
        self._notes[(repo, number)] = note


class QueueSteward:
    """The steward's acts on a base that requires GitHub's merge queue."""

    def __init__(
        self,
        github: PullPort,
        pulls: PullCache,
        repos: Repos,
        views: TaskViews,
        signals: Signals,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.github = github
        self.pulls = pulls
        self.repos = repos
        self.views = views
        self.signals = signals
        self.metrics = metrics
        self._read: set[str] = set()  # merge groups whose checks were read

    async def notes(
        self, in_review: Mapping[IssueRef, Task], pulls: Mapping[IssueRef, PullSnapshot]
    ) -> dict[IssueRef, QueueNote]:
        """What GitHub's merge queue said of each pull request on a queue base; a red group's
        required checks are read once (from its head), for the agent and the words."""
        notes: dict[IssueRef, QueueNote] = {}
        for ref, pull in pulls.items():
            task = in_review.get(ref)
            note = self.signals.queue.get(ref.repo, pull.number)
            if task is None or note is None or not pull.merge_queue:
                continue
            group = note.group_sha
            if note.state == "dequeued" and group and not note.red and group not in self._read:
                if note.reason in ("", "CI_FAILURE", "CI_TIMEOUT"):
                    try:
                        checks = await self.github.checks_on(
                            task.installation_id or 0, ref.repo, group
                        )
                    except GitHubError as exc:
                        log.warning("group_checks_failed %s: %s", ref, exc)
                    else:
                        if len(self._read) >= _MAX_KEPT:
                            self._read.clear()
                        self._read.add(group)  # once per group, red or not
                        red = red_checks(dataclasses.replace(pull, checks=checks))
                        self.signals.queue.red(ref.repo, pull.number, red)
                        note = self.signals.queue.get(ref.repo, pull.number) or note
            notes[ref] = note
        return notes

    async def enqueue(self, task: Task, pr: int, sha: str) -> None:
        """Add the pull request to GitHub's merge queue at exactly ``sha`` (once per head:
        ``bot.merge_queue`` remembers it); GitHub tests and lands it."""
        inst = task.installation_id or 0
        self.views.merging.add(task.ref)
        outcome = await self.github.enqueue(inst, task.repo, pr, sha)
        self.pulls.forget(task.repo, pull=pr)
        if outcome.accepted:
            log.info("enqueued %s pr=%s status=%s", task.ref, pr, outcome.status)
            self.signals.queue.enqueued(task.repo, pr, sha)
            return
        log.info("enqueue_refused %s pr=%s: %s", task.ref, pr, outcome.message)
        self.views.merging.discard(task.ref)
        self.signals.queue.refused(task.repo, pr, sha, outcome.message)
        self.signals.steward_wake.set()

    async def landed(self, task: Task, pull: PullSnapshot) -> None:
        """After GitHub's merge queue merged it: what ``_merge`` does after a merge."""
        inst = task.installation_id or 0
        log.info("merged", extra={"repo": task.repo, "issue": task.number, "pr": pull.number})
        if self.metrics:
            self.metrics.merges.inc(outcome="merged")
        default = (await self.github.repo(inst, task.repo)).default_branch
        if pull.merge_sha and pull.base_ref == default:
            self.signals.note_base(task.repo, inst, pull.merge_sha)
        if self.repos.config(task.repo).merge.delete_branch:
            await self.github.delete_branch(inst, task.repo, pull.head_ref)
        self.signals.steward_wake.set()
