"""Issues become tasks: who may hand an issue over, and a task brought up to date from GitHub.

Every path re-reads the issue (a fresh snapshot) before deciding, so duplicated, reordered or
lost deliveries converge. The trigger label counts only from someone with write access (or an
allowed bot), checked on the event or, for any other path, from the issue's events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from bot.adapters.github import GitHubError, IssueInfo
from bot.core import lifecycle
from bot.core.lifecycle import CancelCause, Cancelled, Restarted
from bot.core.model import IssueRef, Task, TaskState, branch_name
from bot.core.plan import DRAFT_LABEL
from bot.core.refs import parse_blockers
from bot.core.render import describe_reason
from bot.ports import Clock, IssuePort, TaskStore
from bot.reporting import Reporter
from bot.repos import Repos
from bot.signals import Identity, Signals
from bot.views import TaskViews

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = {"admin", "maintain", "write"}


class IssueSync:
    """Brings tasks up to date with their issues; state changes go through ``views``."""

    def __init__(
        self,
        github: IssuePort,
        store: TaskStore,
        repos: Repos,
        reporter: Reporter,
        views: TaskViews,
        signals: Signals,
        identity: Identity,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.repos = repos
        self.reporter = reporter
        self.views = views
        self.signals = signals
        self.identity = identity
        self.clock = clock
        self._sync_locks: dict[IssueRef, tuple[asyncio.Lock, int]] = {}  # the lock, its users

    async def may_trigger(
        self, inst: int, ref: IssueRef, login: str | None, kind: str | None
    ) -> bool:
        """May the sender of a ``labeled`` event hand the issue over?"""
        return await self._labeler_allowed(inst, ref, login or "", kind or "User")

    async def _labeler_allowed(self, inst: int, ref: IssueRef, login: str, kind: str) -> bool:
        """The trigger label counts only from a user with write access or an allowed bot.

        A user without write access gets the label removed with a comment saying why.
        """
        config = self.repos.config(ref.repo)
        if kind == "Bot":
            return login in config.bots.allow
        perm = await self.github.permission(inst, ref.repo, login) if login else "none"
        if perm in WRITE_PERMISSIONS:
            return True
        await self.github.remove_label(inst, ref, config.trigger_label)
        await self.github.upsert_comment(
            inst,
            ref,
            "<!-- stoneforge:permission -->",
            f"Thanks @{login}! Only people with write access to this repository can hand an "
            f"issue to Stoneforge, so I removed `{config.trigger_label}`. "
            "A maintainer can add it back.",
        )
        log.info("trigger_refused", extra={"sender": login, "permission": perm})
        return False

    async def is_writer(self, inst: int, repo: str, login: str, kind: str = "User") -> bool:
        """Does this account's review count? Write access or better, or a bot the repository
        allows (the rule ``_labeler_allowed`` applies to the label); never the App itself."""
        if not login or self.identity.is_self(login):
            return False
        if kind == "Bot":
            return login in self.repos.config(repo).bots.allow
        return await self.github.permission(inst, repo, login) in WRITE_PERMISSIONS

    async def sync_issue(
        self,
        inst: int,
        ref: IssueRef,
        *,
        relabeled: bool = False,
        labeled_by: str | None = None,
        planned: Mapping[str, Any] | None = None,
    ) -> None:
        """Re-read one issue from GitHub and bring its task up to date. ``planned``: the
        director's fields of a plan's task (plan id, index, files, priority), set with the task
        itself, so no claim ever sees it without them."""
        # Intake and reconciliation may look at the same issue at once: one at a time. The
        # lock goes when nobody holds or waits for it (every issue event passes here).
        lock, users = self._sync_locks.get(ref, (asyncio.Lock(), 0))
        self._sync_locks[ref] = (lock, users + 1)
        try:
            async with lock:
                await self._sync_issue(inst, ref, relabeled, labeled_by, planned)
        finally:
            lock, users = self._sync_locks[ref]
            if users == 1:
                del self._sync_locks[ref]
            else:
                self._sync_locks[ref] = (lock, users - 1)

    async def _sync_issue(
        self,
        inst: int,
        ref: IssueRef,
        relabeled: bool,
        labeled_by: str | None,
        planned: Mapping[str, Any] | None = None,
    ) -> None:
        task, issue, native = await self._read(inst, ref, trigger=labeled_by is not None)
        if issue is None or issue.is_pull:
            return
        config = self.repos.config(ref.repo)
        # A draft of a plan is never a task, whoever labels it: ``/stoneforge approve`` is.
        drafted = DRAFT_LABEL in issue.labels
        if drafted or not (issue.state == "open" and config.trigger_label in issue.labels):
            await self._untriggered(task, issue)
            return
        self.reporter.note_labels(ref, issue.labels)  # a task's issue: its first status write
        if native is None:
            native = await self._native_blockers(inst, ref)
        fields = self._task_fields(inst, issue, native)
        if labeled_by:
            fields["labeled_by"] = labeled_by
        elif task is None:
            # Not from a labeled event we checked (reconciliation, a late or lost delivery):
            # ask GitHub who applied the label before trusting it.
            actor = await self.github.label_actor(inst, ref, config.trigger_label)
            if actor is None or not await self._labeler_allowed(inst, ref, actor[0], actor[1]):
                log.info("trigger_unverified", extra={"actor": actor[0] if actor else None})
                return
            fields["labeled_by"] = actor[0]
        if planned:
            fields.update(planned)
        created = False
        if task is None:
            task = Task(
                repo=ref.repo,
                number=ref.number,
                created_at=self.clock(),
                branch=branch_name(ref.number, issue.title),
                **fields,
            )
            created = await asyncio.to_thread(self.store.create_task, task)
            if created:
                log.info("task_created")
        if not created:
            if relabeled and await self._restarted(inst, ref, task):
                # A maintainer's retry: fresh budgets of attempts and of spend, from a fresh
                # base. What it spent so far stays on record.
                restart = Restarted(by=labeled_by)
                fields.update(
                    lifecycle.transition(
                        task.state, TaskState.QUEUED, restart, describe_reason(restart)
                    ),
                    worker=None,
                    attempt=0,
                    not_before=None,
                    rate_limits=(),
                    cost_at_restart_usd=task.cost_usd,
                )
            task = await asyncio.to_thread(functools.partial(self.store.update_task, ref, **fields))
        await self._refresh_external(inst, task)
        self.signals.ready_changed.set()  # runners waiting in a claim look first; views follow
        await self.views.refresh_views()

    async def _read(
        self, inst: int, ref: IssueRef, *, trigger: bool
    ) -> tuple[Task | None, IssueInfo | None, list[IssueRef] | None]:
        """The task, the issue and, for a task, its native blockers.

        A trigger label makes a task: its native blockers are read alongside the issue (two
        round trips become one). Most other events are about issues that are no task: only
        the issue is read, and the blockers later, if it turns out to be labeled.
        """
        task = None if trigger else await asyncio.to_thread(self.store.get_task, ref)
        native: list[IssueRef] | None = None
        if trigger or task is not None:
            issue, native = await asyncio.gather(
                self.github.issue(inst, ref), self._native_blockers(inst, ref)
            )
        else:
            issue = await self.github.issue(inst, ref)
        if trigger:
            task = await asyncio.to_thread(self.store.get_task, ref)
        return task, issue, native

    async def _untriggered(self, task: Task | None, issue: IssueInfo) -> None:
        """The issue is closed or lost its label: its task, if queued or running, stops."""
        if issue.state == "closed":
            self.views.external[issue.ref] = issue.state_reason != "not_planned"
        if task and task.state in (TaskState.QUEUED, TaskState.RUNNING):
            await self.views.transition(
                task, TaskState.CANCELLED, Cancelled(CancelCause.UNTRIGGERED)
            )

    def _task_fields(self, inst: int, issue: IssueInfo, native: list[IssueRef]) -> dict[str, Any]:
        """What a task takes from its issue and the repository's configuration."""
        config = self.repos.config(issue.repo)
        text = parse_blockers(issue.body, issue.repo)
        blockers = tuple(r for r in dict.fromkeys([*native, *text]) if r != issue.ref)
        # A priority label sets the priority; without one the task keeps what it has (the
        # default, its plan's, or a `/stoneforge priority`), so a later edit does not undo it.
        priority = min(
            (config.priority_labels[lbl] for lbl in issue.labels if lbl in config.priority_labels),
            default=None,
        )
        return {
            "title": issue.title,
            "body": issue.body,
            "issue_id": issue.id,
            "installation_id": inst,
            "blocked_by": blockers,
            **({"priority": priority} if priority is not None else {}),
            "agent": config.agent_for(issue.labels).name,
            "runs_on": config.runs_on_for(issue.labels),
        }

    async def _restarted(self, inst: int, ref: IssueRef, task: Task) -> bool:
        """A failed or cancelled task whose label a maintainer put back after it last ran."""
        if task.state not in (TaskState.FAILED, TaskState.CANCELLED):
            return False
        return await self._labeled_since(inst, ref, self.repos.config(ref.repo).trigger_label, task)

    async def _labeled_since(self, inst: int, ref: IssueRef, label: str, task: Task) -> bool:
        """Was the trigger label applied again after the task last ran?

        A late or replayed ``labeled`` delivery for the original labeling must not restart a
        task that has since failed; GitHub's issue events say when the label really went on.
        """
        actor = await self.github.label_actor(inst, ref, label)
        if actor is None:
            return False
        last_run = max(task.dispatched_at or 0.0, task.created_at)
        if actor.at > last_run:
            return True
        # Event times are whole seconds: a labeling in the same second as the last run counts
        # when the label was also removed in that second or later, i.e. it was put back.
        second = math.floor(last_run)
        return actor.at >= second and actor.removed_at is not None and actor.removed_at >= second

    async def _native_blockers(self, inst: int, ref: IssueRef) -> list[IssueRef]:
        try:
            return await self.github.blocked_by(inst, ref)
        except GitHubError as exc:
            if exc.status == 404:  # no such issue (any more): the issue read says so too
                return []
            raise

    async def _refresh_external(self, inst: int, task: Task) -> None:
        """Learn whether blockers that are not tasks are done.

        An issue is done when closed as completed; a parent issue with sub-issues is done when
        all its children are. Unknown or inaccessible issues are left out: the graph reports
        them as missing.
        """
        for ref in task.blocked_by:
            if await asyncio.to_thread(self.store.get_task, ref) is not None:
                continue
            try:
                info = await self.github.issue(inst, ref)
                children = await self.github.sub_issues(inst, ref) if info else []
            except GitHubError:
                info, children = None, []
            if info is None:
                self.views.external.pop(ref, None)
            elif children:
                self.views.external[ref] = all([await self._child_done(c) for c in children])
            else:
                self.views.external[ref] = (
                    info.state == "closed" and info.state_reason != "not_planned"
                )

    async def _child_done(self, child: IssueInfo) -> bool:
        task = await asyncio.to_thread(self.store.get_task, child.ref)
        if task is not None:
            return task.state == TaskState.MERGED
        return child.state == "closed" and child.state_reason != "not_planned"

    async def sync_dependents(self, inst: int, ref: IssueRef) -> None:
        """A closed or reopened issue that is not a task may release or hold its dependents.

        (A task releases its dependents itself, when its pull request merges.)
        """
        if await asyncio.to_thread(self.store.get_task, ref) is not None:
            return
        for task in await asyncio.to_thread(self.store.list_tasks, states=[TaskState.QUEUED]):
            if ref in task.blocked_by:
                await self._refresh_external(inst, task)
        await self.views.refresh_views()
        self.signals.ready_changed.set()
