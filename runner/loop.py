"""The runner daemon: K workers claim jobs from the bot, run an agent in a worktree, push, report.

Per task job (docs/architecture.md, "bot <-> runner protocol"): prepare the task's worktree (and run
the repository's setup command), build the prompt, run the agent while heartbeating, verify
(a non-empty change, the repository's test command), retry the agent once with the failure in
its prompt (resuming its session when the CLI can), then commit and force-push the task branch
and post the result. An agent that runs out of room, or asks for a handoff, has its work in
progress pushed and its note reported. Tokens and cost are recorded per run, as the run's own
spend (runner.usage). A plan job (the director's) goes to ``runner.planning`` instead, and a
rebase job (the steward's) to ``runner.rebase``, a resolve_conflicts job to ``runner.resolve``,
a review job to ``runner.review``.

Every failure becomes a result; a worker never dies, and the worktree is always released. The
only jobs that end without a result are those the bot cancelled or no longer counts as this
runner's (a heartbeat answered 403, 409 or 410: it already knows), and those whose report could
not be delivered, whose lease then expires.

Every message is a model of ``bot.core.protocol``: the claim answer is parsed into a ``Job``
(or a ``Prefetch``), and the job's heartbeats, transcripts and result carry its claim secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bot.core.protocol import (
    ClaimRequest,
    Job,
    JobResult,
    PlanJob,
    Prefetch,
    RebaseJob,
    ResolveConflictsJob,
    ReviewJob,
)
from runner.agents import get_adapter, known_agents
from runner.bot_client import Beat, BotClient, ClaimError
from runner.git import GitError, RepoMirror
from runner.job import (
    Control,
    JobState,
    TaskJob,
    exclude_scratch,
    failed,
    handoff,
    scrub_report,
    setup_detail,
)
from runner.planning import Planner
from runner.process import KilledBy, reap_orphans
from runner.rebase import run_rebase
from runner.resolve import run_resolve
from runner.review import run_review
from runner.tries import AgentTries
from runner.workspace import Workspaces

log = logging.getLogger(__name__)

SETUP_INTERRUPTED = "The runner shut down while the setup command ran; the agent never started."


class Runner:
    def __init__(
        self,
        bot_url: str,
        token: str,
        *,
        workers: int = 3,
        work_dir: Path,
        name: str = "runner-1",
        labels: list[str] | None = None,
        capacity: int | None = None,
        agent_override: str | None = None,
        agent_timeout_s: float = 1800,
        stall_timeout_s: float = 600,
        setup_timeout_s: float = 600,
        test_timeout_s: float = 900,
        shutdown_grace_s: float = 20,
        rate_limit_pause_s: float = 900,
        heartbeat_s: float = 10,
        claim_wait_s: float = 20,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        retry_base_s: float = 1.0,
        retry_max_s: float = 30.0,
        report_attempts: int = 8,
        workspaces: Workspaces | None = None,
        disk_budget_mb: int | None = None,
        logs_kept: int = 200,
    ) -> None:
        self.bot_url = bot_url.rstrip("/")
        self._token = token
        self.workers = workers
        self.work_dir = Path(work_dir).absolute()
        self.name = name
        self.labels = list(labels or [])
        self.capacity = workers if capacity is None else capacity
        self.agent_override = agent_override
        self.agent_timeout_s = agent_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.setup_timeout_s = setup_timeout_s
        self.test_timeout_s = test_timeout_s
        self.shutdown_grace_s = shutdown_grace_s
        self.rate_limit_pause_s = rate_limit_pause_s
        self.heartbeat_s = heartbeat_s
        self.claim_wait_s = claim_wait_s
        self.on_event = on_event
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.report_attempts = report_attempts
        self.logs_kept = logs_kept  # jobs whose local transcripts stay (the bot has every one)
        self.workspaces = workspaces or Workspaces(
            self.work_dir, pool_size=max(workers, 1), disk_budget_mb=disk_budget_mb
        )
        self.paused: dict[str, float] = {}  # agent name -> epoch until which it is rate limited
        self.missing: dict[str, str] = {}  # agent name -> why its CLI cannot run here
        self._mirrors: dict[str, RepoMirror] = {}
        self._bot: BotClient | None = None  # while run() or run_job() talks to the bot
        self._prefetches: set[asyncio.Task[None]] = set()
        self.tries = AgentTries(
            work_dir=self.work_dir,
            agent_override=agent_override,
            agent_timeout_s=agent_timeout_s,
            stall_timeout_s=stall_timeout_s,
            test_timeout_s=test_timeout_s,
            rate_limit_pause_s=rate_limit_pause_s,
            logs_kept=logs_kept,
            runner_token=token,
            pause=self._pause,
            emit=self._emit,
        )
        self.planner = Planner(
            work_dir=self.work_dir,
            workspaces=self.workspaces,
            tries=self.tries,
            mirror=self._mirror,
            emit=self._emit,
            agent_override=agent_override,
        )

    # -- daemon ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run the workers until `stop` is set.

        Running agents get `shutdown_grace_s` to finish; then they are stopped and their work in
        progress is pushed and reported as a `runner_shutdown` handoff before this returns.
        """
        orphans = await asyncio.to_thread(reap_orphans, self.work_dir / "agents")
        if orphans:
            log.warning("orphan_agents_killed pgids=%s", orphans)
        await asyncio.to_thread(shutil.rmtree, self.work_dir / "homes", True)  # a crash's leftovers
        self.missing = await asyncio.to_thread(probe_agents)
        for agent, why in sorted(self.missing.items()):
            log.warning("agent_unavailable agent=%s %s", agent, why)
        timeout = httpx.Timeout(30.0, read=self.claim_wait_s + 30.0)
        headers = {"Authorization": f"Bearer {self._token}"}
        async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
            self._bot = BotClient(client, self.bot_url)
            try:
                async with asyncio.TaskGroup() as group:
                    for i in range(self.workers):
                        group.create_task(self._worker(f"{self.name}/w{i}", stop))
            finally:
                self._bot = None

    def _pause(self, agent: str, until: float) -> None:
        """A provider rate-limited ``agent``: claim no work for it until ``until``."""
        self.paused[agent] = until

    def unavailable_agents(self) -> list[str]:
        now = time.time()
        for agent in [a for a, until in self.paused.items() if until <= now]:
            del self.paused[agent]
        return sorted(set(self.paused) | set(self.missing))

    async def _worker(self, worker: str, stop: asyncio.Event) -> None:
        log.info("worker_started worker=%s", worker)
        failures = 0
        while not stop.is_set():
            if self.agent_override in self.unavailable_agents():
                wait = self.paused[str(self.agent_override)] - time.time()
                with contextlib.suppress(TimeoutError):  # asyncio.timeout keeps cancellations
                    async with asyncio.timeout(max(wait, 0.05)):
                        await stop.wait()
                continue
            try:
                job = await self._claim(worker, stop)
                failures = 0
            except ClaimError as exc:
                failures += 1
                delay = min(self.retry_base_s * 2 ** (failures - 1), self.retry_max_s)
                log.warning("claim_failed worker=%s %s; retrying in %.1fs", worker, exc, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
                continue
            if job is not None:
                await self._handle(worker, job, stop)
        log.info("worker_stopped worker=%s", worker)

    async def _claim(self, worker: str, stop: asyncio.Event) -> Job | None:
        body = ClaimRequest(
            runner=self.name,
            worker=worker,
            wait_s=self.claim_wait_s,
            labels=tuple(self.labels),
            capacity=self.capacity,
            unavailable_agents=tuple(self.unavailable_agents()),
            prefetch=True,  # with no work, the bot may say which base to fetch ahead
        )
        assert self._bot is not None, "Runner.run() is not running"
        claim = asyncio.create_task(self._bot.claim(body))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({claim, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not claim.done():
            claim.cancel()
            await asyncio.gather(claim, return_exceptions=True)
            return None
        answer = claim.result()
        if answer is None:
            return None
        if answer.job is None and answer.prefetch is not None:
            self._prefetch(answer.prefetch)
        return answer.job

    def _prefetch(self, hint: Prefetch) -> None:
        """Fetch a base that moved into the mirror in the background, so the next job on it
        starts without a fetch; the worker goes back to claiming at once."""

        async def run() -> None:
            try:
                mirror = self._mirror(hint.repo, hint.clone_url)
                await asyncio.to_thread(mirror.fetch, hint.token, branch=hint.base,
                                        want=hint.base_sha)  # fmt: skip
                log.info("prefetched repo=%s base=%s", hint.repo, hint.base)
            except (GitError, ValueError) as exc:
                log.warning("prefetch_failed repo=%s: %s", hint.repo, exc)

        task = asyncio.create_task(run())
        self._prefetches.add(task)
        task.add_done_callback(self._prefetches.discard)

    async def run_job(self, job: Job, worker: str | None = None) -> JobResult | None:
        """Run one job outside the daemon (the GitHub Action does): the result it posted to the
        bot, or None when the bot took the job back while it ran."""
        headers = {"Authorization": f"Bearer {self._token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30.0) as client:
            self._bot = BotClient(client, self.bot_url)
            try:
                return await self._handle(worker or self.name, job, asyncio.Event())
            finally:
                self._bot = None

    # -- one job -----------------------------------------------------------------------------

    async def _handle(self, worker: str, job: Job, stop: asyncio.Event) -> JobResult | None:
        """Run ``job`` and post its result; the result, or None when the job stopped being ours."""
        job_id = job.job_id
        ctl = Control()
        helpers = [
            asyncio.create_task(self._heartbeat(job, ctl)),
            asyncio.create_task(self._watch_shutdown(job_id, stop, ctl)),
        ]
        report: JobResult | None
        try:
            report = await self._execute(worker, job, ctl)
        except Exception as exc:  # a worker never dies; the bot hears about every failure
            log.exception("job_crashed worker=%s job=%s", worker, job_id)
            report = failed(job, "runner_error", f"{type(exc).__name__}: {exc}")
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if ctl.cancelled:
            log.info("job_dropped worker=%s job=%s (no longer ours, says the bot)", worker, job_id)
            self._emit("job_cancelled", worker, job_id)
            return None
        assert report is not None
        report = scrub_report(report, job.token)
        if report.outcome not in ("completed", "planned", "reviewed"):
            outcome, reason = report.outcome, str(report.reason)
            log.warning("job_%s worker=%s job=%s reason=%s", outcome, worker, job_id, reason)
            self._emit(f"job_{outcome}", worker, job_id, reason=reason, detail=report.detail)
        assert self._bot is not None, "Runner.run() is not running"
        await self._bot.send_result(job, report, attempts=self.report_attempts,
                                    retry_base_s=self.retry_base_s,
                                    retry_max_s=self.retry_max_s)  # fmt: skip
        return report

    async def _execute(self, worker: str, job: Job, ctl: Control) -> JobResult | None:
        if isinstance(job, PlanJob):  # the director's: a read-only worktree, a plan file
            return await self.planner.run(worker, job, ctl, self._bot)
        if isinstance(job, RebaseJob):  # the steward's: git only, no agent
            return await run_rebase(
                job,
                self._mirror(job.repo, job.clone_url),
                self.work_dir,
                ctl,
                test_timeout_s=self.test_timeout_s,
                stall_timeout_s=self.stall_timeout_s,
            )
        if isinstance(job, ResolveConflictsJob):  # the steward's: an agent, mid-rebase
            mirror = self._mirror(job.repo, job.clone_url)
            return await run_resolve(worker, job, mirror, self.work_dir, self.tries, ctl, self._bot)
        if isinstance(job, ReviewJob):  # the steward's: an agent reviews a head, pushes nothing
            mirror = self._mirror(job.repo, job.clone_url)
            return await run_review(worker, job, mirror, self.work_dir, self.tries, ctl, self._bot)
        return await self._execute_task(worker, job, ctl)

    async def _execute_task(self, worker: str, job: TaskJob, ctl: Control) -> JobResult | None:
        repo, branch = job.repo, job.branch
        try:
            prepared = await asyncio.to_thread(
                self.workspaces.prepare,
                repo=repo,
                clone_url=job.clone_url,
                token=job.token,
                branch=branch,
                base=job.base,
                # Later attempts and review feedback build on the branch's pushed work (the
                # open pull request); a restart starts afresh from the base.
                continue_from_branch=job.continues_branch,
                setup_command=job.commands.setup,
                setup_timeout_s=job.timeouts.setup_s or self.setup_timeout_s,
                setup_stall_timeout_s=job.timeouts.stall_s or self.stall_timeout_s,
                base_sha=job.base_sha,
                cancel=ctl.interrupt,  # a job taken back or a shutdown kills its setup command
                pid_dir=self.work_dir / "agents",
            )
        except (GitError, ValueError) as exc:
            return failed(job, "git_error", str(exc))
        except asyncio.CancelledError:
            ctl.interrupt.set()  # the thread is not cancelled with us: its setup command is
            raise
        worktree = Path(prepared.path)
        log.info("job_started worker=%s job=%s branch=%s", worker, job.job_id, branch)
        self._emit("job_started", worker, job.job_id, repo=repo, issue=job.issue,
                   branch=branch, attempt=job.attempt, worktree=str(worktree))  # fmt: skip
        report: JobResult | None = None
        try:
            if prepared.setup is not None and prepared.setup.killed_by is KilledBy.CANCELLED:
                # Taken back (nothing is reported) or shut down: nothing was done, and the
                # setup's files are not the task's work, so nothing is pushed either.
                report = handoff(job, "runner_shutdown", None, SETUP_INTERRUPTED)
            elif prepared.setup is not None and not prepared.setup.ok:
                report = failed(job, "setup_failed", setup_detail(prepared.setup))
            else:
                mirror = self._mirror(repo, job.clone_url)
                await asyncio.to_thread(exclude_scratch, worktree)
                state = JobState(job, worktree, prepared.base_sha, mirror)
                report = await self.tries.run(worker, state, ctl, self._bot)
        except GitError as exc:
            report = failed(job, "git_error", str(exc))
        finally:
            warm = report is not None and report.outcome in ("completed", "handoff")
            try:
                await asyncio.to_thread(self.workspaces.release, worktree, keep_warm=warm)
                await asyncio.to_thread(self.workspaces.enforce_budget)
            except Exception:
                log.exception("worktree_release_failed job=%s path=%s", job.job_id, worktree)
        return report

    def _mirror(self, repo: str, clone_url: str) -> RepoMirror:
        mirror = self._mirrors.get(repo)
        if mirror is None or mirror.clone_url != clone_url:
            mirror = self._mirrors[repo] = RepoMirror(self.work_dir, repo, clone_url)
        return mirror

    # -- around a job ------------------------------------------------------------------------

    async def _heartbeat(self, job: Job, ctl: Control) -> None:
        # Renew well within the bot's lease, however short the bot configured it.
        lease_s = job.lease_s
        interval = min(self.heartbeat_s, lease_s / 3) if lease_s > 0 else self.heartbeat_s
        while self._bot is not None:
            await asyncio.sleep(max(0.2, interval))
            if await self._bot.heartbeat(job) is Beat.NOT_OURS:
                ctl.cancelled = True
                ctl.interrupt.set()
                return

    async def _watch_shutdown(self, job_id: str, stop: asyncio.Event, ctl: Control) -> None:
        await stop.wait()
        ctl.stopping = True
        log.info("shutdown_grace job=%s grace_s=%.1f", job_id, self.shutdown_grace_s)
        await asyncio.sleep(self.shutdown_grace_s)
        log.info("shutdown_interrupt job=%s", job_id)
        ctl.interrupt.set()

    def _emit(self, kind: str, worker: str, job_id: str, **fields: Any) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event({"type": kind, "worker": worker, "job_id": job_id, **fields})
        except Exception:
            log.exception("on_event callback failed")


def probe_agents() -> dict[str, str]:
    """Probe every agent CLI once at start-up: name -> why it cannot run (missing/incompatible).

    The runner then never claims work for those agents, and the log says plainly why.
    """
    missing: dict[str, str] = {}
    for name in known_agents():
        if name == "script":  # ships with the runner
            continue
        try:
            get_adapter(name).probe()
        except Exception as exc:  # noqa: BLE001 - any failure means "cannot run here"
            missing[name] = str(exc) or type(exc).__name__
    return missing
