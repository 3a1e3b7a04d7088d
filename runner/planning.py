"""A plan job (``bot.core.protocol.PlanJob``): the director's agent reads the repository and
writes a plan.

Per job:

1. A read-only worktree of ``base`` at ``base_sha``: one of the pool's (``runner.workspace``),
   detached, with no branch; never kept warm. "Read-only": nothing is committed or pushed, and
   whatever the agent changes is discarded with the worktree when the job ends.
2. The plan file lives outside the worktree, in a folder of its own per job under the runner's
   work directory (``<work_dir>/plans/<job>/plan.json``); the prompt names it, and so does
   ``STONEFORGE_PLAN_FILE`` in the agent's environment. The adapter gets the folder in
   ``RunRequest.extra_dirs`` and tells its CLI it may write there (docs/agents.md, "Plan
   jobs"). An adapter whose CLI cannot write outside its worktree (``writes_outside_workdir =
   False``: aider) gets ``.stoneforge/plan.json`` in the worktree instead, in
   ``RunRequest.edit_files``; nothing of the worktree is committed, and it is discarded.
3. The planning prompt (``runner.prompt.build_plan_prompt``), and the agent's run through the
   task jobs' machinery (``runner.tries``: the supervisor, transcripts, usage accounting,
   budgets, rate-limit pauses).
4. The file is read (a regular file of at most ``PLAN_MAX_BYTES``, never through a symlink) and
   checked with ``bot.core.plan.validate_plan``. A missing, unreadable or invalid plan gets one
   more try with the errors listed, resuming the agent's session when the adapter can, else
   afresh with the whole prompt.
5. The result: ``PlannedResult`` with the JSON object the agent wrote and the errors left
   (the bot decides what to do with an invalid plan), a ``FailedResult`` when no JSON object
   was written at all (``no_changes``) or the agent failed (``crash``, ``timeout`` ... as for
   tasks), a ``RateLimitedResult`` on a rate limit, or a ``runner_shutdown`` handoff (nothing
   pushed) when the runner stops meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.plan import Plan, validate_plan
from bot.core.protocol import PLAN_MAX_BYTES, JobResult, PlanJob, PlannedResult
from runner.agents import get_adapter
from runner.agents.base import Outcome, Result
from runner.bot_client import BotClient
from runner.git import GitError, RepoMirror
from runner.job import (
    SCRATCH_DIR,
    Control,
    JobState,
    Verdict,
    failed,
    failure_reason,
    handoff,
    slug,
    worktree_git,
)
from runner.prompt import build_plan_followup, build_plan_prompt
from runner.tries import AgentTries, Emit
from runner.workspace import Workspaces

log = logging.getLogger(__name__)

PLAN_FILE_ENV = "STONEFORGE_PLAN_FILE"
PLAN_FILE_NAME = "plan.json"
ERRORS_KEPT = 50  # errors listed to the agent and in the result
ERROR_CHARS = 1_000
NO_PLAN = "the agent wrote no plan, also when asked again"
SHUTDOWN_NOTE = "The runner shut down while the director planned; no plan was sent."


@dataclass
class PlanRead:
    """What the plan file held: the JSON object (None when there was none) and its errors."""

    plan: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)


def read_bounded(path: Path, limit: int, what: str) -> tuple[bytes | None, str | None]:
    """The bytes of the agent's file ``path`` (a regular file of at most ``limit`` bytes,
    never read through a symlink), or None and what is wrong (``what``: "plan file")."""
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None, f"no {what} was written at {path}"
    except OSError as exc:  # the folder is a symlink (ELOOP) or no folder
        return None, f"the {what} {path} cannot be read ({exc.strerror})"
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path.name, flags, dir_fd=folder)
    except FileNotFoundError:
        return None, f"no {what} was written at {path}"
    except OSError as exc:  # a symlink (ELOOP), a permission error
        return None, f"the {what} {path} cannot be read ({exc.strerror})"
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None, f"the {what} {path} is not a regular file"
        data = fh.read(limit + 1)
    if len(data) > limit:
        return None, f"the {what} is larger than {limit} bytes"
    return data, None


def read_plan(path: Path) -> PlanRead:
    """The plan file at ``path``, checked (see the module doc); never raises."""
    data, error = read_bounded(path, PLAN_MAX_BYTES, "plan file")
    if data is None:
        return PlanRead(None, [error or "no plan file"])
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        return PlanRead(None, [f"the plan file does not hold JSON: {exc}"])
    if not isinstance(raw, dict):
        return PlanRead(None, ["the plan file must hold one JSON object (the plan)"])
    checked = validate_plan(raw)
    errors = [] if isinstance(checked, Plan) else checked
    return PlanRead(raw, [e[:ERROR_CHARS] for e in errors[:ERRORS_KEPT]])


def tracked_files(worktree: Path) -> list[str]:
    """The repository's file tree: ``git ls-files`` of the worktree."""
    return [p for p in worktree_git(worktree, "ls-files", "-z").split("\0") if p]


@dataclass
class PlanWorkspace:
    worktree: Path
    base_sha: str
    folder: Path  # the plan file's folder: outside the worktree, or its `.stoneforge/`
    inside: bool = False  # the folder is the worktree's (an agent that writes only there)

    @property
    def plan_file(self) -> Path:
        return self.folder / PLAN_FILE_NAME

    @property
    def extra_dirs(self) -> list[Path]:
        """The folders outside the worktree the agent may write to."""
        return [] if self.inside else [self.folder]


class Planner:
    """Runs plan jobs; ``runner.loop.Runner`` hands it each ``PlanJob`` it claims."""

    def __init__(
        self,
        *,
        work_dir: Path,
        workspaces: Workspaces,
        tries: AgentTries,
        mirror: Callable[[str, str], RepoMirror],  # (repo, clone_url): the runner's mirrors
        emit: Emit,
        agent_override: str | None,
    ) -> None:
        self.work_dir = work_dir
        self.workspaces = workspaces
        self.tries = tries
        self._mirror = mirror
        self._emit = emit
        self.agent_override = agent_override

    async def run(
        self, worker: str, job: PlanJob, ctl: Control, bot: BotClient | None
    ) -> JobResult | None:
        """Plan ``job`` (see the module doc): its result, or None when it stopped being ours."""
        agent_name = self.agent_override or job.agent.name
        try:
            adapter = get_adapter(agent_name)
        except ValueError as exc:
            return failed(job, "unknown_agent", str(exc))
        try:
            inside = not getattr(adapter, "writes_outside_workdir", True)
            space = await asyncio.to_thread(self._prepare, job, ctl, inside)
        except (GitError, OSError, ValueError) as exc:
            return failed(job, "git_error", str(exc))
        except asyncio.CancelledError:
            ctl.interrupt.set()  # the thread is not cancelled with us: its fetch is
            raise
        try:
            mirror = self._mirror(job.repo, job.clone_url)
            j = JobState(job, space.worktree, space.base_sha, mirror)
            try:
                files = await asyncio.to_thread(tracked_files, space.worktree)
            except GitError as exc:
                return failed(job, "git_error", str(exc))
            log.info("plan_started worker=%s job=%s base=%s sha=%s files=%d",
                     worker, job.job_id, job.base, space.base_sha, len(files))  # fmt: skip
            self._emit("job_started", worker, job.job_id, repo=job.repo, issue=job.issue,
                       branch="", attempt=job.attempt, worktree=str(space.worktree),
                       plan_file=str(space.plan_file))  # fmt: skip
            async with self.tries.job_home(j):
                return await self._tries(worker, j, space, files, adapter, agent_name, ctl, bot)
        finally:
            await asyncio.to_thread(self._discard, space, job.job_id)

    def _prepare(self, job: PlanJob, ctl: Control, inside: bool = False) -> PlanWorkspace:
        """A worktree of the pool at the job's base, detached and branchless, and an empty
        private folder for the plan file (``inside``: the worktree's ``.stoneforge/``)."""
        key = uuid.uuid4().hex[:8]
        branch = f"stoneforge/plan-{job.plan_id}-{key}"  # local only, deleted at once
        prepared = self.workspaces.prepare(
            repo=job.repo, clone_url=job.clone_url, token=job.token, branch=branch,
            base=job.base, base_sha=job.base_sha, cancel=ctl.interrupt,
            pid_dir=self.work_dir / "agents",
        )  # fmt: skip
        mirror = self._mirror(job.repo, job.clone_url)
        sha = prepared.base_sha
        if job.base_sha and job.base_sha != sha and mirror.has_commit(job.base_sha):
            sha = job.base_sha  # the base moved since the bot dispatched: plan what it saw
        folder = self.work_dir / "plans" / f"{slug(job.job_id)}-{key}"
        if inside:
            folder = Path(prepared.path) / SCRATCH_DIR
        try:
            mirror.detach_worktree(prepared.path, sha)
            mirror.delete_branch(branch)
            # Whatever the base holds there goes (a `.stoneforge` symlink, a plan.json).
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                folder.unlink()
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(mode=0o700, parents=True)
        except (GitError, OSError):
            self.workspaces.release(prepared.path, keep_warm=False)
            raise
        return PlanWorkspace(Path(prepared.path), sha, folder, inside)

    def _discard(self, space: PlanWorkspace, job_id: str) -> None:
        """The agent's edits go with the worktree (never kept warm), the plan with its folder."""
        shutil.rmtree(space.folder, ignore_errors=True)
        try:
            self.workspaces.release(space.worktree, keep_warm=False)
            self.workspaces.enforce_budget()
        except Exception:
            log.exception("worktree_release_failed job=%s path=%s", job_id, space.worktree)

    async def _tries(
        self,
        worker: str,
        j: JobState[PlanJob],
        space: PlanWorkspace,
        files: list[str],
        adapter: Any,
        agent_name: str,
        ctl: Control,
        bot: BotClient | None,
    ) -> JobResult | None:
        job, errors, read = j.job, list[str](), PlanRead(None)
        for number in (1, 2):
            if ctl.stopping or ctl.cancelled:
                return None if ctl.cancelled else self._shutdown(j)
            if self.tries.budget_left(j) == 0.0:
                if read.plan is not None:  # no budget for the retry: the plan as it is
                    return PlannedResult(plan=read.plan, errors=tuple(errors), **j.facts())
                return failed(job, "budget", "the plan's budget is spent", **j.facts())
            prompt = build_plan_prompt(job, space.worktree, space.plan_file, files, errors=errors)
            followup = build_plan_followup(errors, space.plan_file) if errors else None
            result = await self.tries.attempt(
                worker, j, adapter, job.agent, number, ctl, prompt=prompt, followup=followup,
                extra_env={PLAN_FILE_ENV: str(space.plan_file)}, extra_dirs=space.extra_dirs,
                edit_files=[space.plan_file] if space.inside else [],
            )  # fmt: skip
            read = await asyncio.to_thread(read_plan, space.plan_file)
            verdict = judge(result, read, ctl)
            j.log_try(number, verdict, result)
            if bot is not None:
                await self.tries.send_transcripts(j, verdict, bot)
            if verdict.outcome == "retry" and number == 1:
                errors = read.errors
                log.info("plan_retry job=%s reason=%s errors=%d",
                         job.job_id, verdict.reason, len(errors))  # fmt: skip
                continue
            return self._finish(j, verdict, read, agent_name)
        raise AssertionError("unreachable")

    def _finish(
        self, j: JobState[PlanJob], verdict: Verdict, read: PlanRead, agent_name: str
    ) -> JobResult | None:
        if verdict.outcome == "cancelled":
            return None
        if verdict.outcome == "handoff":
            return self._shutdown(j)
        if verdict.outcome == "rate_limited":
            return self.tries.rate_limited_result(j, verdict.reason, agent_name)
        if verdict.outcome == "failed":
            return failed(j.job, verdict.reason, verdict.detail, **j.facts())
        if read.plan is None:
            detail = f"{NO_PLAN}: " + "; ".join(read.errors)
            return failed(j.job, "no_changes", detail, **j.facts())
        return PlannedResult(plan=read.plan, errors=tuple(read.errors), **j.facts())

    @staticmethod
    def _shutdown(j: JobState[PlanJob]) -> JobResult:
        return handoff(j.job, "runner_shutdown", None, SHUTDOWN_NOTE, **j.facts())


def judge(result: Result, read: PlanRead, ctl: Control) -> Verdict:
    """What one planning try amounts to; ``retry`` is a try whose plan is missing or invalid."""
    if ctl.cancelled:
        return Verdict("cancelled", "cancelled")
    if ctl.interrupt.is_set():
        return Verdict("handoff", "runner_shutdown")
    if result.outcome is Outcome.RATE_LIMITED:
        return Verdict("rate_limited", result.reason)
    if read.plan is not None and not read.errors:
        return Verdict("completed", "success")
    if read.plan is None and result.outcome is not Outcome.COMPLETED:
        return Verdict("failed", *failure_reason(result))
    reason = "no_plan" if read.plan is None else "invalid_plan"
    return Verdict("retry", reason, "\n".join(read.errors))
