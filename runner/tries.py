"""What a runner does with one job once its worktree is ready: the agent's tries.

Up to two tries: the second only after a try that completed without passing (no change, or the
test command failed), resuming the first one's session with only the failure when the agent CLI
can. Each try is judged by the runner (never by the agent's exit code), its transcript is sent
with that verdict, and the job ends in a push (completed), a handoff (work in progress pushed
with a note), a rate-limit pause, or a failure: a typed ``JobResult``. ``runner.loop.Runner``
runs the daemon around it and gives it its settings, a ``pause`` callback (an agent a provider
rate-limited) and an ``emit`` callback (progress events). A plan job's tries
(``runner.planning``) use the same runs, transcripts and accounting (``attempt``, ``run_once``,
``send_transcripts``), judged by their own rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.core.protocol import AgentChoice, JobResult
from runner.agents import get_adapter
from runner.agents.base import Outcome, Result, RunRequest, resume_failed
from runner.agents.pricing import estimate
from runner.bot_client import BotClient
from runner.job import (
    NO_CHANGES,
    AgentRun,
    Control,
    J,
    JobState,
    TaskJob,
    UnsentTranscript,
    Verdict,
    clip,
    commit_work,
    completed,
    diff_stat,
    failed,
    failure_reason,
    fresh_home,
    handoff,
    prune_logs,
    rate_limited,
    read_note,
    run_shell,
    runner_note,
    slug,
    worktree_changed,
)
from runner.process import run_agent
from runner.prompt import HANDOFF_FILE, build_followup, build_prompt
from runner.usage import reported

log = logging.getLogger(__name__)

MAX_TRIES = 2  # a second try only after one that completed without passing (a nudge is extra)


def _stalled(result: Result, ctl: Control) -> bool:
    """Was the agent killed for silence (not cancelled, not stopping)?"""
    stopped = ctl.cancelled or ctl.stopping or ctl.interrupt.is_set()
    return result.outcome is not Outcome.COMPLETED and result.reason == "stalled" and not stopped


def nudge_text(stall_s: float) -> str:
    """What a stalled agent is told when its session is resumed: the one nudge."""
    minutes = max(1, round(stall_s / 60))
    return (
        f"You produced no output for {minutes} minute(s) and were stopped. Your changes so far "
        "are still in the working tree. Carry on with the task, keeping your output flowing; if "
        f"you are stuck, write what you found and what is left to `{HANDOFF_FILE}` and stop."
    )


Emit = Callable[..., None]  # (kind, worker, job_id, **fields): a progress event


def price_unreported(result: Result, model: str | None, provider: str | None) -> None:
    """Give a run whose CLI reported tokens but no cost its cost from the price table, so a
    budget holds for every agent (runner.agents.pricing)."""
    usage = result.usage
    if usage.cost_usd is not None or not reported(usage):
        return
    priced = estimate(result.model or model, usage, provider)
    usage.cost_usd, usage.cost_note = priced.cost_usd, priced.note


class AgentTries:
    """The try sequence of a job."""

    def __init__(
        self,
        *,
        work_dir: Path,
        agent_override: str | None,
        agent_timeout_s: float,
        stall_timeout_s: float,
        test_timeout_s: float,
        rate_limit_pause_s: float,
        logs_kept: int,
        runner_token: str,
        pause: Callable[[str, float], None],
        emit: Emit,
    ) -> None:
        self.work_dir = work_dir
        self.agent_override = agent_override
        self.agent_timeout_s = agent_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.test_timeout_s = test_timeout_s
        self.rate_limit_pause_s = rate_limit_pause_s
        self.logs_kept = logs_kept  # jobs whose local transcripts stay (the bot has every one)
        self._token = runner_token  # masked in transcripts
        self._pause = pause
        self._emit = emit

    async def run(
        self, worker: str, j: JobState[TaskJob], ctl: Control, bot: BotClient | None
    ) -> JobResult | None:
        """Up to two agent tries; the second only after a try that completed without passing.

        The agent's HOME, where the CLIs keep their sessions, lasts the whole job, so that the
        second try can resume the first one's session. Each try's transcript goes to ``bot``
        (None: nobody to send it to).
        """
        agent = j.job.agent
        agent_name = self.agent_override or agent.name
        try:
            adapter = get_adapter(agent_name)
        except ValueError as exc:
            return failed(j.job, "unknown_agent", str(exc))
        async with self.job_home(j):
            return await self._tries(worker, j, adapter, agent, agent_name, ctl, bot)

    @contextlib.asynccontextmanager
    async def job_home(self, j: JobState[J]) -> AsyncIterator[Path]:
        """The agent's HOME for the whole job (fresh, removed afterwards); old logs pruned."""
        j.home = self.work_dir / "homes" / slug(j.job.job_id)
        await asyncio.to_thread(fresh_home, j.home)
        try:
            yield j.home
        finally:
            await asyncio.to_thread(shutil.rmtree, j.home, True)
            await asyncio.to_thread(prune_logs, self.work_dir / "logs", self.logs_kept)

    async def _tries(
        self,
        worker: str,
        j: JobState[TaskJob],
        adapter: Any,
        agent: AgentChoice,
        agent_name: str,
        ctl: Control,
        bot: BotClient | None,
    ) -> JobResult | None:
        failure: str | None = None
        nudged = False
        number = 0
        while number < MAX_TRIES:
            number += 1
            if ctl.stopping or ctl.cancelled:
                return await self._handoff(j, "runner_shutdown", ctl)
            if self.budget_left(j) == 0.0:
                if number == 1:  # the bot sent a task whose budget earlier attempts spent
                    detail = "the task's budget is spent: nothing is left for this attempt"
                    return failed(j.job, "budget", detail)
                return await self._handoff(j, "budget", ctl)
            prompt = build_prompt(j.job, j.worktree, failure=failure)
            followup = build_followup(failure) if failure else None
            result = await self.attempt(worker, j, adapter, agent, number, ctl,
                                        prompt=prompt, followup=followup)  # fmt: skip
            if _stalled(result, ctl) and not nudged:
                # Silent past the stall timeout: one nudge, resuming the session (an extra
                # try, not one of the two). A second stall ends the job (``_judge``).
                nudged = True
                stall = j.job.timeouts.stall_s or self.stall_timeout_s
                verdict = Verdict("retry", "stalled", nudge_text(stall))
                j.log_try(number, verdict, result)
                if bot is not None:
                    await self.send_transcripts(j, verdict, bot)
                log.info("agent_nudged job=%s try=%d", j.job.job_id, number)
                failure = verdict.detail
                number -= 1
                continue
            verdict = await self._judge(j, result, ctl, nudged=nudged)
            j.log_try(number, verdict, result)
            if bot is not None:
                await self.send_transcripts(j, verdict, bot)
            if verdict.outcome == "retry" and number < MAX_TRIES:
                failure = verdict.detail
                continue
            return await self._finish(worker, j, verdict, agent_name, ctl)
        raise AssertionError("unreachable")

    async def attempt(
        self,
        worker: str,
        j: JobState[J],
        adapter: Any,
        agent: AgentChoice,
        number: int,
        ctl: Control,
        *,
        prompt: str,
        followup: str | None,
        extra_env: Mapping[str, str] | None = None,
        extra_dirs: Sequence[Path] = (),
        edit_files: Sequence[Path] = (),
    ) -> Result:
        """One try. A retry (``followup``: the news since the last try) resumes the last run's
        session with only ``followup`` as its prompt when the agent can; if that resume fails at
        once, or the agent cannot resume, it starts afresh with the whole ``prompt``.
        """
        last = j.results[-1] if j.results else None
        session = last.session_id if followup and last and adapter.can_resume() else None
        run = functools.partial(self.run_once, worker, j, adapter, agent, number=number,
                                ctl=ctl, extra_env=extra_env, extra_dirs=extra_dirs,
                                edit_files=edit_files)  # fmt: skip
        if session:
            result = await run(followup or "", resume=session)
            if not resume_failed(result) or ctl.interrupt.is_set():
                return result
            log.warning("resume_failed job=%s try=%d session=%s reason=%s; starting afresh",
                        j.job.job_id, number, session, result.reason)  # fmt: skip
        return await run(prompt)

    async def run_once(
        self,
        worker: str,
        j: JobState[J],
        adapter: Any,
        agent: AgentChoice,
        prompt: str,
        *,
        number: int,
        ctl: Control,
        resume: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        extra_dirs: Sequence[Path] = (),
        edit_files: Sequence[Path] = (),
    ) -> Result:
        """One agent run; its usage is recorded as what this run spent (runner.usage)."""
        timeouts = j.job.timeouts
        cumulative = bool(getattr(adapter, "cumulative_usage", False))
        req = RunRequest(
            task_id=j.job.job_id,
            prompt=prompt,
            workdir=j.worktree,
            model=agent.model,
            budget_usd=self._budget(j, resume if cumulative else None),
            resume_session=resume,
            extra_env=dict(extra_env or {}),
            extra_dirs=list(extra_dirs),
            edit_files=list(edit_files),
        )
        started = time.monotonic()
        result = await run_agent(
            adapter,
            req,
            timeout_s=timeouts.agent_s or self.agent_timeout_s,
            stall_timeout_s=timeouts.stall_s or self.stall_timeout_s,
            cancel=ctl.interrupt,
            transcript_dir=(log_dir := self._log_dir(j, number)),
            pid_dir=self.work_dir / "agents",
            home=j.home,
        )
        seconds = round(time.monotonic() - started, 3)
        price_unreported(result, req.model, adapter.provider)
        spent = j.ledger.charge(result.session_id, result.usage, cumulative=cumulative)
        j.results.append(result)
        j.runs.append(AgentRun(number, seconds, spent, result.session_id or resume, bool(resume)))
        log.info("agent_finished job=%s try=%d outcome=%s reason=%s seconds=%.1f session=%s "
                 "resumed=%s", j.job.job_id, number, result.outcome.value, result.reason,
                 seconds, result.session_id, resume is not None)  # fmt: skip
        self._emit("agent_finished", worker, j.job.job_id, outcome=result.outcome.value,
                   reason=result.reason, agent_seconds=seconds, attempt_try=number,
                   session_id=result.session_id, resumed=resume is not None)  # fmt: skip
        j.unsent.append(UnsentTranscript(number, result, seconds, spent,
                                self.agent_override or agent.name,
                                log_dir))  # fmt: skip
        return result

    @staticmethod
    def budget_left(j: JobState[J]) -> float | None:
        """What is left of the job's budget (the bot sends what earlier attempts left of the
        task's), after this job's runs so far; None when there is no budget."""
        budget = j.job.budget_usd
        if budget is None:
            return None
        spent = sum(run.spent.cost_usd or 0.0 for run in j.runs)
        return max(0.0, round(budget - spent, 6))

    def _budget(self, j: JobState[J], session: str | None) -> float | None:
        """The cap for one run: what is left. A CLI that counts a resumed session's running
        total against its cap (claude) gets what the session spent so far on top."""
        left = self.budget_left(j)
        if left is None:
            return None
        earlier = j.ledger.totals.get(session) if session else None
        spent = earlier.cost_usd if earlier is not None else None
        return round(left + (spent or 0.0), 6)

    def _log_dir(self, j: JobState[J], number: int) -> Path:
        """A fresh folder per agent run: a job id can repeat (a review round or a rate limit
        gives the attempt back), and a resume that failed is followed by a fresh run."""
        j.run_count += 1
        return (
            self.work_dir
            / "logs"
            / f"{slug(j.job.job_id)}-{j.key}"
            / (f"try{number}-run{j.run_count}")
        )

    async def send_transcripts(self, j: JobState[J], verdict: Verdict, bot: BotClient) -> None:
        """Upload the runs of the try just judged, labeled with the runner's verdict: an agent
        that "completed" but whose tests failed is a failed try. A run whose resume failed
        before a fresh one took over is labeled so."""
        unsent, j.unsent = j.unsent, []
        outcome = "failed" if verdict.outcome == "retry" else verdict.outcome
        for index, run in enumerate(unsent):
            last = index == len(unsent) - 1
            await bot.upload_transcript(
                j.job, run.log_dir,
                try_number=run.number, result=run.result, seconds=run.seconds, usage=run.spent,
                agent=run.agent, outcome=outcome if last else "failed",
                reason=verdict.reason if last else "resume_failed",
                secrets=(j.job.token, j.job.claim_secret, self._token),
            )  # fmt: skip

    async def _judge(
        self, j: JobState[TaskJob], result: Result, ctl: Control, *, nudged: bool = False
    ) -> Verdict:
        """What one try amounts to; `retry` is a completed try that did not pass. A try that
        stalled again after its nudge (``nudged``) ends the job: its work, if any, is handed
        off as ``stalled``, which the bot gives to a person."""
        if ctl.cancelled:
            return Verdict("cancelled", "cancelled")
        if ctl.interrupt.is_set():
            return Verdict("handoff", "runner_shutdown")
        if (j.worktree / HANDOFF_FILE).is_file() and result.outcome is not Outcome.RATE_LIMITED:
            handoff = result.outcome is Outcome.HANDOFF_NEEDED
            return Verdict("handoff", result.reason if handoff else "agent_requested")
        if result.outcome is Outcome.RATE_LIMITED:
            return Verdict("rate_limited", result.reason)
        if result.outcome is Outcome.HANDOFF_NEEDED:
            return Verdict("handoff", result.reason)
        changed = await asyncio.to_thread(worktree_changed, j.worktree, j.base_sha)
        if result.outcome is not Outcome.COMPLETED:
            if result.reason == "stalled" and changed:
                return Verdict("handoff", "stalled")
            if result.reason == "stalled" and nudged:
                why = "silent past the stall timeout again after a nudge"
                return Verdict("failed", "stalled", why)
            return Verdict("failed", *failure_reason(result))
        if not changed:
            return Verdict("retry", "no_changes", NO_CHANGES)
        test = j.job.commands.test
        if not test:
            return Verdict("completed", "success")
        limit = j.job.timeouts.test_s or self.test_timeout_s
        stall = j.job.timeouts.stall_s or self.stall_timeout_s
        tests = await run_shell(test, j.worktree, limit, ctl.interrupt, stall_timeout_s=stall,
                                pid_dir=self.work_dir / "agents")  # fmt: skip
        if ctl.cancelled or ctl.interrupt.is_set():
            return await self._judge(j, result, ctl)
        if tests.ok:
            return Verdict("completed", "success")
        why = (
            tests.killed_by.words(timeout_s=limit, stall_timeout_s=stall)
            if tests.killed_by
            else f"exit code {tests.exit_code}"
        )
        detail = f"The test command `{test}` failed ({why}). Its output:\n\n"
        return Verdict("retry", "tests_failed", detail + tests.output_tail)

    async def _finish(
        self, worker: str, j: JobState[TaskJob], verdict: Verdict, agent_name: str, ctl: Control
    ) -> JobResult | None:
        if verdict.outcome == "cancelled":
            return None
        if verdict.outcome == "handoff":
            return await self._handoff(j, verdict.reason, ctl)
        if verdict.outcome == "rate_limited":
            return self.rate_limited_result(j, verdict.reason, agent_name)
        if verdict.outcome in ("failed", "retry"):
            detail = verdict.detail if verdict.outcome == "failed" else clip(verdict.detail or "")
            if verdict.reason == "no_changes":
                detail = "the agent made no changes, also when asked again"
            return failed(j.job, verdict.reason, detail, **j.facts())
        sha = await asyncio.to_thread(commit_work, j, "")
        if sha is None:  # the check above saw changes; only a race empties them
            return failed(j.job, "no_changes", NO_CHANGES, **j.facts())
        await asyncio.to_thread(j.mirror.push, j.worktree, j.job.branch, j.job.token,
                                force=True)  # fmt: skip
        log.info("pushed job=%s branch=%s sha=%s", j.job.job_id, j.job.branch, sha)
        self._emit("pushed", worker, j.job.job_id, branch=j.job.branch, head_sha=sha)
        return completed(j.job, sha, **j.facts())

    async def _handoff(self, j: JobState[TaskJob], reason: str, ctl: Control) -> JobResult | None:
        """Commit and push the work in progress (not `.stoneforge/`), report it with a note."""
        if ctl.cancelled:
            return None
        note = await asyncio.to_thread(read_note, j.worktree)
        sha = await asyncio.to_thread(commit_work, j, reason)
        if sha is not None:
            await asyncio.to_thread(j.mirror.push, j.worktree, j.job.branch, j.job.token,
                                    force=True)  # fmt: skip
            log.info("pushed_wip job=%s branch=%s sha=%s", j.job.job_id, j.job.branch, sha)
        if not note:
            stat = await asyncio.to_thread(diff_stat, j.worktree, j.base_sha)
            last = j.results[-1].final_text if j.results else None
            note = runner_note(reason, stat, last)
        return handoff(j.job, reason, sha, note, **j.facts())

    def rate_limited_result(self, j: JobState[J], reason: str, agent_name: str) -> JobResult:
        """The job's last run was rate limited: pause its agent, report when it may resume."""
        retry_at = j.results[-1].retry_at
        epoch = retry_at.timestamp() if retry_at else None
        until = max(epoch or time.time() + self.rate_limit_pause_s, time.time())
        self._pause(agent_name, until)
        log.warning("agent_paused agent=%s until=%.0f", agent_name, until)
        detail = j.results[-1].detail
        return rate_limited(j.job, reason, epoch, agent_name, detail, **j.facts())
