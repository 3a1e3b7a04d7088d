"""The bot's service layer: turns stored deliveries into tasks and hands ready tasks to runners.

Webhooks are triggers only: each handler re-reads the issue from GitHub (a fresh snapshot)
before deciding, so duplicated, reordered or lost deliveries converge to the same state.
Decisions come from ``bot.core``; this module does the I/O around them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from bot.adapters.github import GitHubAdapter, GitHubError, IssueInfo, issue_repo
from bot.core.graph import analyse
from bot.core.model import IssueRef, Task, TaskState, branch_name
from bot.core.refs import parse_blockers
from bot.settings import BotSettings
from bot.store import Store

log = logging.getLogger(__name__)

STATE_LABELS = {
    TaskState.QUEUED: "stoneforge:queued",
    TaskState.RUNNING: "stoneforge:running",
    TaskState.IN_REVIEW: "stoneforge:in-review",
    TaskState.FAILED: "stoneforge:needs-human",
}
WRITE_PERMISSIONS = {"admin", "maintain", "write"}
STATUS_MARKER = "<!-- stoneforge:status -->"
#: Every event ``Bot.handle`` acts on; ``app.yml`` subscribes to exactly these (a test checks).
HANDLED_EVENTS = frozenset(
    {
        "issues",
        "issue_dependencies",
        "sub_issues",
        "pull_request",
        "check_run",
        "check_suite",
        "status",
        "push",
    }
)

AGENT_INSTRUCTIONS = """\
You are working on one task of a larger plan, in a git worktree of {repo} on branch {branch}.
Make the change the issue asks for, keep the repository's tests passing, and do not push:
the runner commits and pushes your work and opens the pull request that closes #{number}.
"""


def job_id(task: Task) -> str:
    return f"{task.repo}#{task.number}@{task.attempt}"


class Bot:
    """Owns the store, the GitHub adapter and the wake-ups shared by intake, runners, steward."""

    def __init__(self, settings: BotSettings, store: Store, github: GitHubAdapter) -> None:
        self.settings = settings
        self.store = store
        self.github = github
        self.queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self.ready_changed = asyncio.Event()
        self.steward_wake = asyncio.Event()
        self.bot_login: str | None = None
        self._external: dict[IssueRef, bool] = {}
        self._label_locks: dict[IssueRef, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- intake ---------------------------------------------------------------------------
    async def ingest(self, guid: str, event: str, body: bytes) -> bool:
        """Store a verified delivery durably and queue it; False for a duplicate delivery id."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        action = payload.get("action") if isinstance(payload, dict) else None
        inst = (payload.get("installation") or {}).get("id") if isinstance(payload, dict) else None
        fresh = await asyncio.to_thread(
            self.store.record_delivery, guid, event, action, inst, body, time.time()
        )
        if fresh:
            self.queue.put_nowait((guid, event, body))
        return fresh

    async def resume_unprocessed(self) -> None:
        """After a restart, queue every delivery stored but not yet processed."""
        for delivery in await asyncio.to_thread(self.store.unprocessed_deliveries, 10_000):
            self.queue.put_nowait((delivery.guid, delivery.event, delivery.payload))

    async def process_forever(self) -> None:
        while True:
            guid, event, body = await self.queue.get()
            try:
                await self._process(guid, event, body)
            except Exception:  # noqa: BLE001 - one bad delivery must not stop intake
                log.exception("delivery_failed", extra={"delivery_id": guid})

    async def _process(self, guid: str, event: str, body: bytes) -> None:
        error = None
        try:
            payload = json.loads(body)
            await self.handle(event, payload)
        except Exception as exc:  # noqa: BLE001 - recorded on the delivery, reconciliation retries
            error = f"{type(exc).__name__}: {exc}"
            log.exception("delivery_handler_failed", extra={"delivery_id": guid})
        await asyncio.to_thread(self.store.mark_processed, guid, time.time(), error)

    async def handle(self, event: str, payload: Mapping[str, Any]) -> None:
        """Route one event by (event, action). Unknown events are ignored."""
        sender = payload.get("sender") or {}
        if self.bot_login and sender.get("login") == self.bot_login:
            return  # our own writes: acting on them would loop
        inst = (payload.get("installation") or {}).get("id")
        repo = (payload.get("repository") or {}).get("full_name")
        action = payload.get("action")
        if event == "issues" and inst and repo:
            issue = payload["issue"]
            ref = IssueRef(repo, int(issue["number"]))
            label = (payload.get("label") or {}).get("name")
            if action == "labeled" and label == self.settings.trigger_label:
                if not await self._may_trigger(inst, ref, sender):
                    return
            await self.sync_issue(inst, ref, relabeled=action == "labeled")
            await self._sync_dependents(inst, ref)
        elif event in ("issue_dependencies", "sub_issues") and inst and repo:
            for key in ("blocked_issue", "parent_issue", "blocking_issue", "sub_issue"):
                issue = payload.get(key)
                if isinstance(issue, Mapping) and "number" in issue:
                    await self.sync_issue(
                        inst, IssueRef(issue_repo(issue, repo), int(issue["number"]))
                    )
        elif event in ("pull_request", "check_run", "check_suite", "status", "push"):
            self.steward_wake.set()
        elif event in ("installation", "installation_repositories") and inst:
            if action in ("created", "added", "new_permissions_accepted", "unsuspend"):
                await self.reconcile_installation(int(inst))

    async def _may_trigger(self, inst: int, ref: IssueRef, sender: Mapping[str, Any]) -> bool:
        """The trigger label counts only when a user with write access applied it."""
        login = str(sender.get("login") or "")
        perm = await self.github.permission(inst, ref.repo, login) if login else "none"
        if perm in WRITE_PERMISSIONS:
            return True
        await self.github.remove_label(inst, ref, self.settings.trigger_label)
        await self.github.upsert_comment(
            inst,
            ref,
            "<!-- stoneforge:permission -->",
            f"Thanks @{login}! Only people with write access to this repository can hand an "
            f"issue to Stoneforge, so I removed `{self.settings.trigger_label}`. "
            "A maintainer can add it back.",
        )
        return False

    # --- tasks ------------------------------------------------------------------------------
    async def sync_issue(self, inst: int, ref: IssueRef, *, relabeled: bool = False) -> None:
        """Re-read one issue from GitHub and bring its task up to date."""
        issue = await self.github.issue(inst, ref)
        task = await asyncio.to_thread(self.store.get_task, ref)
        if issue is None or issue.is_pull:
            return
        wanted = issue.state == "open" and self.settings.trigger_label in issue.labels
        if not wanted:
            if issue.state == "closed":
                self._external[ref] = issue.state_reason != "not_planned"
            if task and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                await self.set_state(
                    task, TaskState.CANCELLED, detail="label removed or issue closed"
                )
            return
        blockers = await self._blockers(inst, issue)
        now = time.time()
        if task is None:
            task = Task(
                repo=ref.repo,
                number=ref.number,
                title=issue.title,
                body=issue.body,
                issue_id=issue.id,
                installation_id=inst,
                blocked_by=blockers,
                created_at=now,
                branch=branch_name(ref.number, issue.title),
            )
            await asyncio.to_thread(self.store.upsert_task, task)
            self._relabel(inst, ref, TaskState.QUEUED)
            log.info("task_created", extra={"repo": ref.repo, "issue": ref.number})
        else:
            fields: dict[str, Any] = {
                "title": issue.title,
                "body": issue.body,
                "issue_id": issue.id,
                "installation_id": inst,
                "blocked_by": blockers,
            }
            if relabeled and task.state in (TaskState.FAILED, TaskState.CANCELLED):
                fields.update(state=TaskState.QUEUED, worker=None, detail=None)
                self._relabel(inst, ref, TaskState.QUEUED)
            task = await asyncio.to_thread(lambda: self.store.update_task(ref, **fields))
        await self._refresh_external(inst, task)
        self.ready_changed.set()

    async def _blockers(self, inst: int, issue: IssueInfo) -> tuple[IssueRef, ...]:
        native = await self.github.blocked_by(inst, issue.ref)
        text = parse_blockers(issue.body, issue.repo)
        return tuple(r for r in dict.fromkeys([*native, *text]) if r != issue.ref)

    async def _refresh_external(self, inst: int, task: Task) -> None:
        """Learn whether blockers that are not tasks are done (closed as completed)."""
        for ref in task.blocked_by:
            if await asyncio.to_thread(self.store.get_task, ref) is not None:
                continue
            try:
                info = await self.github.issue(inst, ref)
            except GitHubError:
                info = None
            if info is None:
                self._external.pop(ref, None)  # missing or inaccessible: reported by the graph
            else:
                self._external[ref] = info.state == "closed" and info.state_reason != "not_planned"

    async def _sync_dependents(self, inst: int, ref: IssueRef) -> None:
        """A closed or reopened issue that is not a task may release or hold the tasks it blocks.

        (A task releases its dependents itself, when its pull request merges.)
        """
        if await asyncio.to_thread(self.store.get_task, ref) is not None:
            return
        for task in await asyncio.to_thread(self.store.list_tasks, states=[TaskState.QUEUED]):
            if ref in task.blocked_by:
                await self._refresh_external(inst, task)
                self.ready_changed.set()

    async def reconcile_installation(self, inst: int) -> None:
        """Rebuild tasks from GitHub itself: a lost webhook delays work but never loses it."""
        for repo in await self.github.installation_repos(inst):
            for issue in await self.github.labeled_issues(
                inst, repo.full_name, self.settings.trigger_label
            ):
                await self.sync_issue(inst, issue.ref)
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

    # --- runners ----------------------------------------------------------------------------
    async def ready(self) -> list[IssueRef]:
        tasks = await asyncio.to_thread(self.store.list_tasks)
        return list(analyse(tasks, self._external).ready)

    async def claim(self, runner: str, worker: str, wait_s: float) -> dict[str, Any] | None:
        """Long-poll for the next ready task; claims it atomically and returns the job."""
        deadline = time.monotonic() + max(0.0, min(wait_s, 60.0))
        while True:
            self.ready_changed.clear()
            candidates = await self.ready()
            if candidates:
                task = await asyncio.to_thread(
                    functools.partial(
                        self.store.claim_task,
                        candidates,
                        worker=f"{runner}/{worker}",
                        now=time.time(),
                        lease_s=self.settings.lease_s,
                    )
                )
                if task is not None:
                    try:
                        return await self._job(task)
                    except Exception:
                        await asyncio.to_thread(
                            functools.partial(
                                self.store.update_task,
                                task.ref,
                                state=TaskState.QUEUED,
                                worker=None,
                            )
                        )
                        raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self.ready_changed.wait(), timeout=remaining)
            except TimeoutError:
                return None

    async def _job(self, task: Task) -> dict[str, Any]:
        inst = task.installation_id or 0
        repo = await self.github.repo(inst, task.repo)
        token = await self.github.repo_token(inst, task.repo)
        branch = task.branch or branch_name(task.number, task.title)
        restart = bool(task.detail and task.detail.startswith("restart"))
        self._relabel(inst, task.ref, TaskState.RUNNING)
        prompt = (
            f"# {task.title} (#{task.number})\n\n{task.body}\n\n---\n"
            + AGENT_INSTRUCTIONS.format(repo=task.repo, branch=branch, number=task.number)
        )
        log.info(
            "task_dispatched",
            extra={"repo": task.repo, "issue": task.number, "worker": task.worker},
        )
        return {
            "job_id": job_id(task),
            "repo": task.repo,
            "issue": task.number,
            "title": task.title,
            "body": task.body,
            "attempt": task.attempt,
            "branch": branch,
            "base": repo.default_branch,
            "clone_url": repo.clone_url,
            "token": token,
            "agent": {"name": self.settings.default_agent, "model": None},
            "prompt": prompt,
            "restart": restart,
        }

    async def _running(self, jid: str) -> Task | None:
        ref_text, _, attempt = jid.rpartition("@")
        try:
            ref = IssueRef.parse(ref_text)
        except ValueError:
            return None
        task = await asyncio.to_thread(self.store.get_task, ref)
        if task is None or task.state != TaskState.RUNNING or str(task.attempt) != attempt:
            return None
        return task

    async def heartbeat(self, jid: str) -> bool:
        task = await self._running(jid)
        if task is None:
            return False
        await asyncio.to_thread(
            lambda: self.store.update_task(
                task.ref, lease_until=time.time() + self.settings.lease_s
            )
        )
        return True

    async def job_result(self, jid: str, result: Mapping[str, Any]) -> bool:
        """A runner finished a job: open the pull request, or record the failure."""
        task = await self._running(jid)
        if task is None:
            return False
        inst = task.installation_id or 0
        seconds = float(result.get("agent_seconds") or 0.0)
        total = (task.agent_seconds or 0.0) + seconds
        if result.get("outcome") != "completed" or not result.get("head_sha"):
            reason = str(result.get("reason") or "failed")
            detail = str(result.get("detail") or "")[:2000]
            await self.set_state(
                task, TaskState.FAILED, detail=f"{reason}: {detail}", agent_seconds=total
            )
            await self.github.upsert_comment(
                inst,
                task.ref,
                STATUS_MARKER,
                f"**Stoneforge:** the agent could not finish this task ({reason}).\n\n"
                f"```\n{detail[-1500:]}\n```\n"
                f"Remove and re-add `{self.settings.trigger_label}` to retry.",
            )
            return True
        repo = await self.github.repo(inst, task.repo)
        summary = str(result.get("summary") or "").strip()
        body = (
            f"Closes #{task.number}\n\n{summary}\n\n"
            f"_Opened by Stoneforge · agent `{self.settings.default_agent}` · "
            f"attempt {task.attempt} · {seconds:.1f} s of agent time._"
        )
        number = await self.github.open_pull(
            inst,
            task.repo,
            head=str(result["branch"]),
            base=repo.default_branch,
            title=task.title,
            body=body,
        )
        await self.set_state(
            task,
            TaskState.IN_REVIEW,
            pr_number=number,
            head_sha=str(result["head_sha"]),
            agent_seconds=total,
            detail=None,
        )
        self.steward_wake.set()
        return True

    async def expire_leases_forever(self) -> None:
        """A runner that vanished loses its task, which is dispatched again."""
        while True:
            await asyncio.sleep(max(1.0, self.settings.lease_s / 4))
            for task in await asyncio.to_thread(self.store.expired_leases, time.time()):
                if task.state == TaskState.RUNNING:
                    await self.set_state(
                        task, TaskState.QUEUED, worker=None, detail="lease expired"
                    )

    # --- state changes ---------------------------------------------------------------------
    async def set_state(self, task: Task, state: TaskState, **fields: Any) -> Task:
        new = await asyncio.to_thread(
            lambda: self.store.update_task(task.ref, state=state, **fields)
        )
        if task.installation_id:
            self._relabel(task.installation_id, task.ref, state)
        if state in (TaskState.QUEUED, TaskState.MERGED):
            self.ready_changed.set()
        return new

    def _relabel(self, inst: int, ref: IssueRef, state: TaskState) -> None:
        """Show the task's state as a label, in the background and in order per issue."""

        async def run() -> None:
            lock = self._label_locks.setdefault(ref, asyncio.Lock())
            async with lock:
                try:
                    wanted = STATE_LABELS.get(state)
                    if wanted:
                        await self.github.add_labels(inst, ref, [wanted])
                    for label in STATE_LABELS.values():
                        if label != wanted:
                            await self.github.remove_label(inst, ref, label)
                except GitHubError as exc:
                    log.warning("relabel_failed %s: %s", ref, exc)

        job = asyncio.get_running_loop().create_task(run())
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def wait_background(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def snapshot(self, tasks: list[Task]) -> list[dict[str, Any]]:
        report = analyse(tasks, self._external)
        out = []
        for task in tasks:
            item = {
                "repo": task.repo,
                "issue": task.number,
                "title": task.title,
                "state": task.state.value,
                "ready": task.ref in report.ready,
                "blocked_by": [str(r) for r in task.blocked_by],
                "worker": task.worker,
                "attempt": task.attempt,
                "branch": task.branch,
                "pr": task.pr_number,
                "head_sha": task.head_sha,
                "dispatched_at": task.dispatched_at,
                "agent_seconds": task.agent_seconds,
                "merged_at": task.merged_at,
                "merge_sha": task.merge_sha,
                "detail": task.detail,
            }
            out.append(item)
        return out
