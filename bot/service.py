"""The bot's service layer: stored deliveries become tasks; the task graph is kept and shown.

Webhooks are triggers only: each handler re-reads the issue from GitHub (a fresh snapshot)
before deciding, so duplicated, reordered or lost deliveries converge to the same state, and a
periodic reconciliation rebuilds everything from GitHub itself. Decisions come from
``bot.core``; this module does the I/O around them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from bot.adapters.github import GitHubAdapter, GitHubError, IssueInfo
from bot.core.graph import GraphReport, analyse
from bot.core.model import PENDING_STATES, IssueRef, Task, TaskState, branch_name
from bot.core.refs import parse_blockers
from bot.core.render import StatusView
from bot.events import EventInfo, parse_event
from bot.logs import bind
from bot.metrics import BotMetrics
from bot.reporting import Reporter
from bot.repos import Repos
from bot.settings import BotSettings
from bot.store import NewDelivery, Store

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = {"admin", "maintain", "write"}
#: Every event ``Bot.handle`` acts on; ``app.yml`` subscribes to exactly these (a test checks).
HANDLED_EVENTS = frozenset(
    {
        "issues",
        "issue_dependencies",
        "sub_issues",
        "pull_request",
        "pull_request_review",
        "check_run",
        "check_suite",
        "status",
        "push",
    }
)
REDELIVERY_WINDOW_S = 3 * 24 * 3600  # GitHub keeps failed deliveries for three days


class Bot:
    """Owns the store, the GitHub adapter and the wake-ups shared by intake, runners, steward."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        github: GitHubAdapter,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.github = github
        self.metrics = metrics
        self.repos = Repos(settings, store, github)
        self.reporter = Reporter(github, store, settings.public_url)
        self.queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self.ready_changed = asyncio.Event()
        self.steward_wake = asyncio.Event()
        self.bot_login: str | None = None
        self.merging: set[IssueRef] = set()  # tasks the steward is bringing in
        self._external: dict[IssueRef, bool] = {}  # blockers that are not tasks -> done?
        self._views: dict[IssueRef, tuple[object, ...]] = {}
        self._sync_locks: dict[IssueRef, asyncio.Lock] = {}
        self._pending_writes: list[tuple[NewDelivery, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    # --- intake ---------------------------------------------------------------------------
    async def ingest(self, guid: str, event: str, body: bytes) -> bool:
        """Store a verified delivery durably and queue it; False for a duplicate delivery id.

        Deliveries arriving together are stored in one transaction (group commit); each
        caller still answers only after its own delivery is committed.
        """
        handled = event in HANDLED_EVENTS or event.startswith("installation")
        action: str | None = None
        inst: int | None = None
        if handled:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                raw_action = payload.get("action")
                raw_inst = (payload.get("installation") or {}).get("id")
                action = raw_action if isinstance(raw_action, str) else None
                inst = raw_inst if isinstance(raw_inst, int) else None
        row = NewDelivery(guid, event, action, inst, body, time.time(), processed=not handled)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_writes.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        fresh = await done
        if fresh and handled:
            self.queue.put_nowait((guid, event, body))
        return fresh

    async def _write_pending(self) -> None:
        while self._pending_writes:
            batch, self._pending_writes = self._pending_writes, []
            try:
                stored = await asyncio.to_thread(
                    self.store.record_deliveries, [row for row, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - every waiting request must get an answer
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), fresh in zip(batch, stored, strict=True):
                if not done.done():
                    done.set_result(fresh)

    async def resume_unprocessed(self) -> None:
        """After a restart, queue every delivery stored but not yet processed."""
        for delivery in await asyncio.to_thread(self.store.unprocessed_deliveries, 10_000):
            self.queue.put_nowait((delivery.guid, delivery.event, delivery.payload))

    async def process_forever(self) -> None:
        while True:
            guid, event, body = await self.queue.get()
            with bind(delivery_id=guid):
                try:
                    await self._process(guid, event, body)
                except Exception:  # noqa: BLE001 - one bad delivery must not stop intake
                    log.exception("delivery_failed")

    async def _process(self, guid: str, event: str, body: bytes) -> None:
        error = None
        try:
            payload = json.loads(body)
            await self.handle(event, payload if isinstance(payload, dict) else {})
        except Exception as exc:  # noqa: BLE001 - recorded on the delivery; reconciliation repairs
            error = f"{type(exc).__name__}: {exc}"
            log.exception("delivery_handler_failed")
        await asyncio.to_thread(self.store.mark_processed, guid, time.time(), error)

    async def handle(self, event: str, payload: Mapping[str, Any]) -> None:
        """Route one event by (event, action). Unknown events are ignored."""
        info = parse_event(event, payload)
        if self.bot_login and info.sender_login == self.bot_login:
            return  # our own writes: acting on them would loop
        inst, repo = info.installation_id, info.repo
        with bind(repo=repo, issue=info.issue_number):
            if event == "issues" and inst and repo and info.issue_number:
                ref = IssueRef(repo, info.issue_number)
                trigger = self.repos.config(repo).trigger_label
                labeled_by = None
                if info.action == "labeled" and info.label == trigger:
                    if not await self._may_trigger(inst, ref, info):
                        return
                    labeled_by = info.sender_login
                await self.sync_issue(
                    inst, ref, relabeled=info.action == "labeled", labeled_by=labeled_by
                )
                await self._sync_dependents(inst, ref)
            elif event in ("issue_dependencies", "sub_issues") and inst and repo:
                for other_repo, number in info.related_issues:
                    await self.sync_issue(inst, IssueRef(other_repo, number))
                    await self._sync_dependents(inst, IssueRef(other_repo, number))
            elif event == "push" and inst and repo:
                await self._on_push(inst, repo, payload)
            elif event in ("pull_request", "check_run", "check_suite", "status"):
                self.steward_wake.set()
            elif event == "pull_request_review":
                # A trigger only: the steward re-reads the reviews and the reviewers' access, and
                # sends a task whose pull request got "changes requested" back to its agent.
                log.info(
                    "review_%s", info.action, extra={"pr": info.pull_number, "by": info.review_by}
                )
                self.steward_wake.set()
            elif event == "installation" and inst:
                if info.action == "deleted":
                    for name in info.repos_removed:
                        await self._forget_repo(name)
                else:
                    await self.reconcile_installation(inst)
            elif event == "installation_repositories" and inst:
                for name in info.repos_removed:
                    await self._forget_repo(name)
                if info.repos_added:
                    await self.reconcile_installation(inst)

    async def _may_trigger(self, inst: int, ref: IssueRef, info: EventInfo) -> bool:
        return await self._labeler_allowed(
            inst, ref, info.sender_login or "", info.sender_type or "User"
        )

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
        if not login or login == self.bot_login:
            return False
        if kind == "Bot":
            return login in self.repos.config(repo).bots.allow
        return await self.github.permission(inst, repo, login) in WRITE_PERMISSIONS

    async def _on_push(self, inst: int, repo: str, payload: Mapping[str, Any]) -> None:
        """A push to the default branch may change the configuration; any push may unblock PRs."""
        self.steward_wake.set()
        ref = str(payload.get("ref") or "")
        default = str((payload.get("repository") or {}).get("default_branch") or "main")
        if ref == f"refs/heads/{default}":
            await self.repos.load_config(inst, await self.github.repo(inst, repo))

    async def base_sha(self, inst: int, repo: str, branch: str) -> str:
        """The default branch's tip, read from GitHub at dispatch.

        Runners whose mirror already has it skip their fetch. It is never served from a cache:
        a replica that missed a push would hand out an old base, and an agent working on an
        old base produces a red pull request.
        """
        return await self.github.branch_sha(inst, repo, branch)

    async def _forget_repo(self, repo: str) -> None:
        await self.repos.remove(repo)
        for task in await asyncio.to_thread(functools.partial(self.store.list_tasks, repo=repo)):
            if task.state in (TaskState.QUEUED, TaskState.RUNNING):
                await self.set_state(task, TaskState.CANCELLED, detail="App uninstalled")

    # --- tasks ------------------------------------------------------------------------------
    async def sync_issue(
        self, inst: int, ref: IssueRef, *, relabeled: bool = False, labeled_by: str | None = None
    ) -> None:
        """Re-read one issue from GitHub and bring its task up to date."""
        lock = self._sync_locks.setdefault(ref, asyncio.Lock())
        async with lock:  # intake and reconciliation may look at the same issue at once
            await self._sync_issue(inst, ref, relabeled, labeled_by)

    async def _sync_issue(
        self, inst: int, ref: IssueRef, relabeled: bool, labeled_by: str | None
    ) -> None:
        issue = await self.github.issue(inst, ref)
        task = await asyncio.to_thread(self.store.get_task, ref)
        if issue is None or issue.is_pull:
            return
        config = self.repos.config(ref.repo)
        if not (issue.state == "open" and config.trigger_label in issue.labels):
            if issue.state == "closed":
                self._external[ref] = issue.state_reason != "not_planned"
            if task and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                await self.set_state(
                    task, TaskState.CANCELLED, detail="label removed or issue closed"
                )
            return
        blockers = await self._blockers(inst, issue)
        priority = min(
            (config.priority_labels[lbl] for lbl in issue.labels if lbl in config.priority_labels),
            default=2,
        )
        fields: dict[str, Any] = {
            "title": issue.title,
            "body": issue.body,
            "issue_id": issue.id,
            "installation_id": inst,
            "blocked_by": blockers,
            "priority": priority,
            "agent": config.agent_for(issue.labels).name,
            "runs_on": config.runs_on_for(issue.labels),
        }
        if labeled_by:
            fields["labeled_by"] = labeled_by
        created = False
        if task is None and labeled_by is None:
            # Not from a labeled event we checked (reconciliation, a late or lost delivery):
            # ask GitHub who applied the label before trusting it.
            actor = await self.github.label_actor(inst, ref, config.trigger_label)
            if actor is None or not await self._labeler_allowed(inst, ref, actor[0], actor[1]):
                log.info("trigger_unverified", extra={"actor": actor[0] if actor else None})
                return
            fields["labeled_by"] = actor[0]
        if task is None:
            task = Task(
                repo=ref.repo,
                number=ref.number,
                created_at=time.time(),
                branch=branch_name(ref.number, issue.title),
                **fields,
            )
            created = await asyncio.to_thread(self.store.create_task, task)
            if created:
                log.info("task_created")
        if not created:
            if (
                relabeled
                and task.state in (TaskState.FAILED, TaskState.CANCELLED)
                and await self._labeled_since(inst, ref, config.trigger_label, task)
            ):
                # A maintainer's retry: a fresh budget of attempts, from a fresh base.
                fields.update(
                    state=TaskState.QUEUED,
                    worker=None,
                    detail="restart: relabeled",
                    attempt=0,
                    not_before=None,
                )
            task = await asyncio.to_thread(functools.partial(self.store.update_task, ref, **fields))
        await self._refresh_external(inst, task)
        self.ready_changed.set()  # runners waiting in a claim look first; views follow
        await self.refresh_views()

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

    async def _blockers(self, inst: int, issue: IssueInfo) -> tuple[IssueRef, ...]:
        native = await self.github.blocked_by(inst, issue.ref)
        text = parse_blockers(issue.body, issue.repo)
        return tuple(r for r in dict.fromkeys([*native, *text]) if r != issue.ref)

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
                self._external.pop(ref, None)
            elif children:
                self._external[ref] = all([await self._child_done(c) for c in children])
            else:
                self._external[ref] = info.state == "closed" and info.state_reason != "not_planned"

    async def _child_done(self, child: IssueInfo) -> bool:
        task = await asyncio.to_thread(self.store.get_task, child.ref)
        if task is not None:
            return task.state == TaskState.MERGED
        return child.state == "closed" and child.state_reason != "not_planned"

    async def _sync_dependents(self, inst: int, ref: IssueRef) -> None:
        """A closed or reopened issue that is not a task may release or hold its dependents.

        (A task releases its dependents itself, when its pull request merges.)
        """
        if await asyncio.to_thread(self.store.get_task, ref) is not None:
            return
        for task in await asyncio.to_thread(self.store.list_tasks, states=[TaskState.QUEUED]):
            if ref in task.blocked_by:
                await self._refresh_external(inst, task)
        await self.refresh_views()
        self.ready_changed.set()

    # --- reconciliation ---------------------------------------------------------------------
    async def reconcile_installation(self, inst: int) -> None:
        """Rebuild tasks from GitHub itself: a lost webhook delays work but never loses it."""
        for repo in await self.github.installation_repos(inst):
            await self.repos.setup(inst, repo)
            trigger = self.repos.config(repo.full_name).trigger_label
            labeled = await self.github.labeled_issues(inst, repo.full_name, trigger)
            seen = {issue.ref for issue in labeled}
            for issue in labeled:
                await self.sync_issue(inst, issue.ref)
            for task in await asyncio.to_thread(
                functools.partial(self.store.list_tasks, repo=repo.full_name)
            ):
                if task.ref not in seen and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                    await self.sync_issue(inst, task.ref)  # unlabeled or closed while we were away
        self.steward_wake.set()

    async def reconcile(self) -> None:
        try:
            for inst in await self.github.installations():
                await self.reconcile_installation(inst)
        except GitHubError as exc:
            log.warning("reconcile_failed: %s", exc)

    async def reconcile_forever(self) -> None:
        while True:
            await self.reconcile()
            await asyncio.sleep(self.settings.reconcile_interval_s)

    async def redeliver_failed(self) -> int:
        """After downtime: ask GitHub to redeliver what failed and we never stored."""
        try:
            failed = await self.github.failed_deliveries(time.time() - REDELIVERY_WINDOW_S)
        except GitHubError as exc:
            log.warning("redelivery_list_failed: %s", exc)
            return 0
        count = 0
        for delivery_id, guid in failed:
            if await asyncio.to_thread(self.store.get_delivery, guid) is not None:
                continue
            try:
                await self.github.redeliver(delivery_id)
                count += 1
            except GitHubError as exc:
                log.warning("redelivery_failed %s: %s", guid, exc)
        if count:
            log.info("redelivery_requested", extra={"count": count})
        return count

    # --- the graph, as people see it -------------------------------------------------------
    async def graph(self) -> tuple[list[Task], GraphReport]:
        tasks = await asyncio.to_thread(self.store.list_tasks)
        return tasks, analyse(tasks, self._external)

    def view(self, task: Task, report: GraphReport) -> StatusView:
        cycle = next((c for c in report.cycles if task.ref in c), ())
        return StatusView(
            task=task,
            html_base=self.settings.html_url,
            waiting_on=tuple(report.waiting.get(task.ref, ())),
            cycle=tuple(cycle),
            missing=tuple(report.missing.get(task.ref, ())),
            cost_usd=task.cost_usd,
            merging=task.ref in self.merging,
            trigger_label=self.repos.config(task.repo).trigger_label,
        )

    async def refresh_views(self) -> None:
        """Show every task whose visible state changed: labels, status comment, ready time."""
        tasks, report = await self.graph()
        now = time.time()
        ready = set(report.ready)
        for task in tasks:
            if task.state in PENDING_STATES and task.ref in ready and task.ready_at is None:
                task = await asyncio.to_thread(
                    functools.partial(self.store.update_task, task.ref, ready_at=now)
                )
            view = self.view(task, report)
            merging = task.ref in self.merging
            key = (
                task.state,
                task.attempt,
                task.pr_number,
                view.waiting_on,
                view.cycle,
                view.missing,
                merging,
                task.detail,
            )
            if self._views.get(task.ref) == key:
                continue
            self._views[task.ref] = key
            self.reporter.show(view, merging=merging)

    async def set_state(self, task: Task, state: TaskState, **fields: Any) -> Task:
        new = await asyncio.to_thread(
            functools.partial(self.store.update_task, task.ref, state=state, **fields)
        )
        if state in (TaskState.QUEUED, TaskState.MERGED):
            self.ready_changed.set()
        await self.refresh_views()
        return new

    def snapshot(self, tasks: list[Task]) -> list[dict[str, Any]]:
        report = analyse(tasks, self._external)
        return [
            {
                "repo": task.repo,
                "issue": task.number,
                "title": task.title,
                "state": task.state.value,
                "ready": task.ref in report.ready,
                "blocked_by": [str(r) for r in task.blocked_by],
                "priority": task.priority,
                "worker": task.worker,
                "attempt": task.attempt,
                "branch": task.branch,
                "pr": task.pr_number,
                "head_sha": task.head_sha,
                "dispatched_at": task.dispatched_at,
                "agent_seconds": task.agent_seconds,
                "cost_usd": task.cost_usd,
                "merged_at": task.merged_at,
                "merge_sha": task.merge_sha,
                "detail": task.detail,
                "agent": task.agent,
                "runs_on": list(task.runs_on),
            }
            for task in tasks
        ]
