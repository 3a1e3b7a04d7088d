"""Handing ready tasks to runners: long-poll claims and leases.

A claim takes the graph's ready set in dispatch order (priority, then the work waiting behind a
task, then age), drops what a concurrency limit or a daily budget holds back, and claims the
first candidate atomically in the store (``SKIP LOCKED`` on PostgreSQL), so several bot replicas
never hand out the same task twice. The issue is re-read from GitHub before the job is built: an
``ImplementJob``, a ``ReviseJob`` when a review sent the task back, a ``FixChecksJob`` when its
required checks stayed red, a ``RebaseJob`` when the steward asked for a rebase, or a
``ResolveConflictsJob`` when that rebase met conflicts, or a ``ReviewJob`` when the steward asked
the review agent for a review (``bot.core.protocol``), with a new job
id and a claim secret for the claiming runner only (``bot.job_claims``, which also answers the
job's heartbeats and result).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from bot.actions_backend import ActionsBackend
from bot.adapters.github import GitHubError
from bot.background import Background
from bot.core import lifecycle
from bot.core.admission import Claimant, admit
from bot.core.admission import blocked_agents as _blocked
from bot.core.lifecycle import (
    CancelCause,
    Cancelled,
    ChecksFailed,
    LeaseExpired,
    Rebasing,
    Resolving,
    Reviewing,
    fresh_base,
)
from bot.core.model import (
    IssueRef,
    Task,
    TaskState,
    branch_name,
    budget_left,
)
from bot.core.protocol import (
    AgentChoice,
    Commands,
    FixChecksJob,
    ImplementJob,
    IssueComment,
    Job,
    PlanContext,
    PlanJob,
    Prefetch,
    RebaseJob,
    ResolveConflictsJob,
    ReviewJob,
    ReviseJob,
    Timeouts,
)
from bot.core.stacking import StackBase, stack_base, stacked_blocker, stacked_ready
from bot.issue_sync import WRITE_PERMISSIONS
from bot.job_claims import JobReports, ResultHandler, job_id, new_claim_secret
from bot.metrics import BotMetrics
from bot.ports import Clock, Configs, DispatchPort, JobStore, Transitions
from bot.prefetch import Prefetcher
from bot.results import HANDOFF_MARKER
from bot.signals import Identity, Signals
from bot.signature import token_hash
from bot.store import ClaimedJob
from bot.views import today
from bot.writer_reviews import Writers, feedback_for

log = logging.getLogger(__name__)


class PlanJobs(Protocol):
    """The director's side of claims (``bot.director.service.Director``): plan jobs, and the
    plan context of a plan's task."""

    async def claim_plan(
        self, runner: str, worker: str, owner: str, labels: frozenset[str] | None = None
    ) -> PlanJob | None: ...

    async def plan_context(self, inst: int, task: Task, body: str = "") -> PlanContext | None: ...

    @property
    def approving(self) -> frozenset[str]:
        """Plans whose tasks ``/stoneforge approve`` is making now: none of them is handed out
        until all are made (file-aware scheduling needs to see them all at once)."""
        ...


def restarting(task: Task) -> bool:
    """The task was restarted (relabeled, or its branch conflicts with the base): its next job
    starts from the base. Read from its typed reason (``bot.core.lifecycle``)."""
    return fresh_base(task.reason)


class Dispatcher:
    """Claims for runners and the Actions pump, the jobs they get, and their leases.

    ``writers`` says whose comments and reviews steer the agent; ``results`` is what a job's
    result does to its task (``bot.results.Results``, behind ``self.reports``).
    """

    def __init__(
        self,
        github: DispatchPort,
        store: JobStore,
        repos: Configs,
        views: Transitions,
        signals: Signals,
        identity: Identity,
        writers: Writers,
        results: ResultHandler,
        *,
        lease_s: float,
        metrics: BotMetrics | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.repos = repos
        self.views = views
        self.signals = signals
        self.identity = identity
        self.writers = writers
        self.lease_s = lease_s
        self.metrics = metrics
        self.clock = clock
        self._work = Background("background")
        self._tokens: dict[IssueRef, str] = {}  # task -> the repository token of its running job
        # Claims woken by the same change share one look at the task table (see _shared).
        self._ready_gen = 0
        self._inflight: dict[tuple[object, ...], tuple[int, asyncio.Future[list[IssueRef]]]] = {}
        self.prefetcher = Prefetcher(github, signals.bases, self._background)
        #: heartbeats, transcripts and results of the jobs it hands out
        self.reports = JobReports(
            store, results, self._revoke, lease_s=lease_s, metrics=metrics, clock=clock
        )
        #: the director, once composed (``bot.service.job_side``): plan jobs go first
        self.plans: PlanJobs | None = None

    async def _shared(
        self, unavailable: frozenset[str], backend: str, labels: frozenset[str] | None
    ) -> list[IssueRef]:
        """``_candidates``, computed once for all claims woken by the same change.

        A claim joins a computation already running only when no change was signalled since it
        started (``_ready_gen``), so its snapshot holds whatever woke the claim; eight workers
        waking on one label then read the task table once, not eight times.
        """
        key = (unavailable, backend, labels)
        entry = self._inflight.get(key)
        future: asyncio.Future[list[IssueRef]]
        if entry is None or entry[0] != self._ready_gen or entry[1].done():
            future = asyncio.ensure_future(self._candidates(unavailable, backend, labels))
            self._inflight[key] = (self._ready_gen, future)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
        else:
            future = entry[1]
        return list(await asyncio.shield(future))

    async def _candidates(
        self,
        unavailable: frozenset[str] = frozenset(),
        backend: str = "runner",
        labels: frozenset[str] | None = None,
    ) -> list[IssueRef]:
        """Ready tasks this caller may take, in dispatch order (``bot.core.admission``).

        ``labels`` are the claiming runner's labels (casefolded); ``None`` skips that rule
        (GitHub Actions routes by the workflow's ``runs-on`` instead).
        """
        now = self.clock()
        tasks, report = await self.views.graph()
        ready = stacked_ready(tasks, report, self._stacked)
        spent: dict[str, float] = {}
        for repo in sorted({ref.repo for ref in ready}):
            if self.repos.config(repo).budget.per_day_usd is not None:
                spent[repo] = await asyncio.to_thread(self.store.cost, repo, today(now))
        claimant = Claimant(backend=backend, labels=labels, unavailable=unavailable)
        paused = await asyncio.to_thread(self.store.paused_repos) if ready else frozenset()
        admission = admit(
            tasks,
            ready,
            self.repos.config,
            claimant,
            now=now,
            spent_today=spent,
            paused_repos=paused,
        )
        approving = self.plans.approving if self.plans is not None else frozenset()
        if approving:
            plan_of = {t.ref: t.plan_id for t in tasks}
            return [ref for ref in admission.admitted if plan_of.get(ref) not in approving]
        return list(admission.admitted)

    def _stacked(self, repo: str) -> bool:
        return self.repos.config(repo).scheduling.dispatch == "stacked"

    async def _stack(self, task: Task, fresh: bool) -> tuple[StackBase | None, str | None]:
        """For ``scheduling.dispatch: stacked`` (``bot.core.stacking``): the blocker branch a
        task starting afresh builds on (None: the base), and the base its job works against
        (its blocker's branch while it is stacked on an unmerged blocker; None: the base).
        A fresh start keeps where it started on the task."""
        if not self._stacked(task.repo) or not task.blocked_by:
            return None, None
        found = await asyncio.to_thread(lambda: [self.store.get_task(b) for b in task.blocked_by])
        by_ref = {t.ref: t for t in found if t is not None}
        if fresh:
            stack = stack_base(task, by_ref)
            if stack is not None:  # where the runner will find it, not where we last saw it
                inst = task.installation_id or 0
                try:
                    head = await self.github.branch_sha(inst, task.repo, stack.branch)
                    stack = dataclasses.replace(stack, head=head)
                except GitHubError:  # gone (merged and deleted just now): from the base
                    stack = None
            await asyncio.to_thread(
                functools.partial(
                    self.store.update_task,
                    task.ref,
                    stacked_on=stack.blocker if stack else None,
                    stacked_sha=stack.head if stack else None,
                )
            )
            return stack, stack.branch if stack else None
        blocker = stacked_blocker(task, by_ref)
        return None, blocker.branch if blocker is not None else None

    async def claim(
        self,
        runner: str,
        worker: str,
        wait_s: float,
        unavailable_agents: frozenset[str] = frozenset(),
        backend: str = "runner",
        labels: frozenset[str] | None = frozenset(),
        prefetch: bool = False,
        owner: str = "",
    ) -> Job | Prefetch | None:
        """Long-poll for the next ready task; claims it atomically and returns the job.

        ``labels``: the runner's labels; ``None`` for a caller that routes by itself (Actions).
        ``prefetch``: with no work, a runner may get a ``Prefetch`` instead (see
        ``bot.prefetch``). ``owner``: the caller's identity (``bot.runner_api``); the job's
        heartbeats, transcripts and results must come from it, with the job's claim secret.
        """
        if labels is not None:
            labels = frozenset(label.casefold() for label in labels)
        deadline = time.monotonic() + max(0.0, min(wait_s, 60.0))
        while True:
            if self.signals.ready_changed.is_set():
                self._ready_gen += 1
            self.signals.ready_changed.clear()
            # Plan jobs first (a plan unblocks many tasks); runners only: the Actions backend
            # takes no plan job.
            if self.plans is not None and backend == "runner":
                planned = await self.plans.claim_plan(runner, worker, owner, labels)
                if planned is not None:
                    return planned
            candidates = await self._shared(unavailable_agents, backend, labels)
            while candidates:
                secret = new_claim_secret()  # only this claim's answer carries it
                claimed = await asyncio.to_thread(
                    functools.partial(
                        self.store.claim_job,
                        candidates,
                        worker=worker if "/" in worker else f"{runner}/{worker}",
                        now=self.clock(),
                        lease_s=self.lease_s,
                        owner=owner,
                        secret_hash=token_hash(secret),
                    )
                )
                if claimed is None:
                    break
                job = await self._job_or_requeue(claimed, secret, unavailable_agents)
                if job is not None:
                    self.prefetcher.handed_out(runner, job)
                    return job
                candidates = [c for c in candidates if c != claimed.task.ref]
            if prefetch and (hint := await self.prefetcher.hint(runner)) is not None:
                return hint
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # lands as the event is set, and the task then outlives the bot's shutdown.
                async with asyncio.timeout(remaining):
                    await self.signals.ready_changed.wait()
            except TimeoutError:
                return None

    async def _job_or_requeue(
        self, claimed: ClaimedJob, secret: str, unavailable: frozenset[str] = frozenset()
    ) -> Job | None:
        task = claimed.task
        try:
            job = await self._job(claimed, secret, unavailable)
        except Exception:
            # The claim is given back (running -> queued, no reason): its reason stays, so a
            # restarted task's next job still starts from the base.
            lifecycle.check(task.state, TaskState.QUEUED, None)
            await asyncio.to_thread(
                functools.partial(
                    self.store.update_task, task.ref, state=TaskState.QUEUED, worker=None
                )
            )
            raise
        if job is None:  # the issue changed under us (closed, unlabeled): not a task any more
            await self.views.transition(
                task, TaskState.CANCELLED, Cancelled(CancelCause.UNTRIGGERED)
            )
            return None
        if self.metrics and task.ready_at:
            self.metrics.dispatch_latency.observe(max(0.0, self.clock() - task.ready_at))

        async def after() -> None:  # off the runner's critical path
            await asyncio.to_thread(
                functools.partial(self.store.update_task, task.ref, ready_at=None)
            )
            await self.views.refresh_views()

        self._background(after())
        return job

    async def _job(
        self, claimed: ClaimedJob, secret: str, unavailable: frozenset[str] = frozenset()
    ) -> Job | None:
        task = claimed.task
        inst = task.installation_id or 0
        config = self.repos.config(task.repo)
        # A fresh snapshot of the issue (not what we stored), read alongside everything else.
        repo = await self.github.repo(inst, task.repo)  # cached after the first call
        issue, base_sha, (comments, notes), token, (feedback, newest_review) = await asyncio.gather(
            self.github.issue(inst, task.ref),
            self.github.branch_sha(inst, task.repo, repo.default_branch),
            self._conversation(inst, task),
            # a review job pushes nothing: its token reads the repository only
            self.github.repo_token(inst, task.repo, write=not isinstance(task.reason, Reviewing)),
            self._review_feedback(inst, task),
        )
        self._revoke(task.ref)  # a token of an earlier job that was never revoked
        self._tokens[task.ref] = token
        if issue is None or issue.state != "open" or config.trigger_label not in issue.labels:
            self._revoke(task.ref)
            return None
        if newest_review is not None and newest_review > (task.review_id or 0):
            # A review that came in after the task was queued is in this job's feedback too:
            # record it, or the steward would send the task back once more for it (and it is
            # this round's: a later claim of the same round does not count another).
            await asyncio.to_thread(self.store.answer_review, task.ref, newest_review)
        fresh = restarting(task) or task.attempt <= 1
        fresh = fresh and not isinstance(task.reason, Rebasing | Resolving | ChecksFailed)
        stack, stack_branch = await self._stack(task, fresh and not feedback)
        branch = task.branch or branch_name(task.number, issue.title)
        if task.branch is None:  # a result must name this branch: keep it with the task
            await asyncio.to_thread(
                functools.partial(self.store.update_task, task.ref, branch=branch)
            )
        agent = config.agent_for(issue.labels)
        to_run = config.agent_to_run(agent.name, _blocked(task, unavailable, self.clock()))
        if config.fallback_agent is not None and to_run == config.fallback_agent.name != agent.name:
            agent = config.fallback_agent  # with none free, the chosen one meets its limit again
        self._background(self.github.add_reaction(inst, task.ref, "eyes"))
        log.info(
            "task_dispatched",
            extra={"repo": task.repo, "issue": task.number, "worker": task.worker},
        )
        fields: dict[str, Any] = {
            "job_id": job_id(task.ref, claimed.dispatch),
            "claim_secret": secret,
            "repo": task.repo,
            "issue": task.number,
            "title": issue.title,
            "body": issue.body,
            "attempt": max(1, task.attempt),
            "max_attempts": config.max_attempts,
            "restart": restarting(task),
            "branch": branch,
            "base": stack_branch or repo.default_branch,
            # lets a runner whose mirror is current skip its fetch
            "base_sha": stack.head if stack else base_sha if stack_branch is None else None,
            "clone_url": repo.clone_url,
            "token": token,
            "lease_s": self.lease_s,
            "agent": AgentChoice(name=agent.name, model=agent.model),
            "commands": Commands(setup=config.commands.setup, test=config.commands.test),
            "timeouts": Timeouts(
                agent_s=config.timeouts.agent_minutes * 60,
                stall_s=config.timeouts.stall_minutes * 60,
            ),
            "budget_usd": budget_left(
                config.budget.per_task_usd, task.cost_usd, task.cost_at_restart_usd
            ),
            "comments": comments,
            "handoff_notes": notes,
        }
        if isinstance(task.reason, Rebasing):  # the steward's: git replays the branch, no agent
            keep = set(RebaseJob.model_fields) - {"kind", "expected_head", "pull_number"}
            return RebaseJob(
                **{k: v for k, v in fields.items() if k in keep},
                expected_head=task.reason.head,
                pull_number=task.reason.pr,
            )
        if isinstance(task.reason, Resolving):  # the steward's: an agent resolves mid-rebase
            keep = set(ResolveConflictsJob.model_fields) - {"kind", "expected_head", "pull_number"}
            return ResolveConflictsJob(
                **{k: v for k, v in fields.items() if k in keep},
                expected_head=task.reason.head,
                pull_number=task.reason.pr,
                conflicts=task.reason.files,
                round=task.reason.round,
            )
        if isinstance(task.reason, Reviewing):  # the steward's: the review agent reviews a head
            review = config.review
            keep = set(ReviewJob.model_fields) - {"kind", "head", "pull_number", "agent"}
            return ReviewJob(
                **{k: v for k, v in fields.items() if k in keep},
                agent=AgentChoice(name=review.agent, model=review.model)
                if review
                else fields["agent"],
                head=task.reason.head,
                pull_number=task.reason.pr,
                round=task.reason.round,
                max_rounds=review.max_rounds if review else task.reason.round,
            )
        if self.plans is not None:  # a plan's task (by its plan id, or its issue's marker)
            fields["plan"] = await self.plans.plan_context(inst, task, issue.body)
        if isinstance(task.reason, ChecksFailed) and task.reason.failures:
            # the steward's: required checks stayed red; fix the same branch, given their output
            return FixChecksJob(
                **fields,
                pull_number=task.pr_number,
                check_failures=task.reason.failures,
                round=task.reason.round,
            )
        if feedback:  # a review sent the task back: revise the same branch and pull request
            return ReviseJob(
                **fields,
                pull_number=task.pr_number,
                review_feedback=tuple(feedback),
                round=max(1, claimed.review_round),
            )
        return ImplementJob(**fields)

    async def _review_feedback(self, inst: int, task: Task) -> tuple[list[str], int | None]:
        """For a task sent back by a "changes requested" review: what its writers asked for.

        Each reviewer whose latest verdict requests changes: the review's body, then its inline
        comments as ``path:line: body`` (``bot.core.steward.review_feedback``). Empty for a
        task no review has sent back; never empty for one that was (the runner continues the
        pull request's branch for a job with feedback).
        """
        if task.pr_number is None or task.review_id is None:
            return [], None
        feedback, newest = await feedback_for(
            self.github, self.writers, inst, task.repo, task.pr_number, answering=task.review_id
        )
        if not feedback:  # approved or dismissed since it was queued: keep the pushed work
            feedback = [
                f"The review that sent this task back (pull request #{task.pr_number}) has "
                "since been approved or dismissed. Check the pushed work against the issue "
                "and change only what still needs it."
            ]
        return feedback, newest

    async def _conversation(self, inst: int, task: Task) -> tuple[list[IssueComment], list[str]]:
        """Comments from people with write access, and our handoff notes, oldest first.

        Comments from anyone else are left out of the prompt: an issue is public input, and
        only collaborators may steer the agent.
        """
        comments: list[IssueComment] = []
        notes: list[str] = []
        for comment in await self.github.comments(inst, task.ref):
            if HANDOFF_MARKER in comment.body and comment.author == self.identity.login:
                notes.append(comment.body.split(HANDOFF_MARKER, 1)[1].strip())
            elif comment.author_type == "User" and comment.author != self.identity.login:
                perm = await self.github.permission(inst, task.repo, comment.author)
                if perm in WRITE_PERMISSIONS:
                    comments.append(IssueComment(author=comment.author, body=comment.body))
        return comments, notes

    def _revoke(self, ref: IssueRef) -> None:
        """The task's job is over: its repository token must not outlive it."""
        token = self._tokens.pop(ref, None)
        if token:
            self._background(self.github.revoke_token(token))

    def _background(self, coro: Awaitable[None]) -> None:
        self._work.spawn(coro)

    async def pump_actions(self, actions: ActionsBackend) -> None:
        """For ``backend: actions`` repositories: each ready task becomes a workflow run."""
        while True:
            try:
                job = await self.claim(
                    "actions", "dispatch", 10.0, backend="actions", labels=None, owner="actions"
                )
                if job is None or isinstance(job, Prefetch):
                    continue
                ref = IssueRef(job.repo, job.issue)
                task = await asyncio.to_thread(self.store.get_task, ref)
                if task is not None:
                    await actions.dispatch(task, job)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the pump must outlive any one failure
                log.exception("actions_dispatch_failed")
                await asyncio.sleep(1.0)

    async def expire_leases_forever(self) -> None:
        """A runner that vanished loses its task, which is dispatched again; and a task in
        review whose pull request was not opened (the bot stopped first) gets it."""
        while True:
            await asyncio.sleep(max(1.0, self.lease_s / 4))
            try:
                await self.reports.results.open_pending()
            except Exception:  # noqa: BLE001 - the lease loop must outlive any one failure
                log.exception("open_pending_failed")
            for task in await asyncio.to_thread(self.store.expired_leases, self.clock()):
                if task.state == TaskState.RUNNING:
                    log.warning("lease_expired", extra={"repo": task.repo, "issue": task.number})
                    self._revoke(task.ref)
                    # A steward's job whose runner vanished is sent again as the same job (a
                    # review, rebase, resolution or fix round keeps its reason and its head);
                    # an agent's implementation starts another attempt.
                    kept = Reviewing | Rebasing | Resolving | ChecksFailed
                    why = task.reason if isinstance(task.reason, kept) else LeaseExpired()
                    await self.views.transition(task, TaskState.QUEUED, why, worker=None)
