"""One job's state on the runner, and the worktree chores around its agent runs.

``JobState`` collects a job's agent runs (``AgentRun``), its tries' log and the usage each run
spent; ``completed``, ``handoff``, ``rate_limited`` and ``failed`` build the typed result the
bot receives (``bot.core.protocol.JobResult``). The worktree helpers decide whether the agent
changed anything, commit its work (never ``.stoneforge/``, the scratch folder for its handoff
note) and run the test command in its own process group.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from bot.core.protocol import (
    COST_NOTE_MAX,
    CompletedResult,
    FailedResult,
    FixChecksJob,
    HandoffResult,
    ImplementJob,
    Job,
    JobResult,
    PlanJob,
    RateLimitedResult,
    ResolveConflictsJob,
    ReviewJob,
    ReviseJob,
    TryOutcome,
    TryRecord,
    handoff_reason,
)
from bot.core.protocol import Usage as WireUsage
from bot.core.protocol import failure_reason as wire_failure_reason
from runner.agents.base import Outcome, Result, Usage
from runner.git import GitError, RepoMirror, git_env, worktree_admin_dir
from runner.process import CommandResult, Flag, build_env, private_home, run_command
from runner.prompt import HANDOFF_FILE, INSTRUCTION_LIMIT
from runner.setup import SetupResult
from runner.usage import UsageLedger

AUTHOR_NAME = "stoneforge[bot]"
AUTHOR_EMAIL = "stoneforge[bot]@users.noreply.github.com"
SCRATCH_DIR = ".stoneforge"  # the agent's handoff note lives here; never committed
TAIL_CHARS = 4000
TEXT_LIMIT = 100_000  # characters of a summary, detail or note the protocol accepts
REASON_LIMIT = 200
NO_CHANGES = "You made no changes to the working tree, but the task needs changes."

#: a job that works on a task's branch (a plan job has none: ``runner.planning``)
TaskJob = ImplementJob | ReviseJob | FixChecksJob
J = TypeVar(
    "J", bound=ImplementJob | ReviseJob | FixChecksJob | PlanJob | ResolveConflictsJob | ReviewJob
)


@dataclass
class Control:
    """A job's interruptions: `interrupt` stops the agent or command that is running."""

    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False  # the job is no longer ours (heartbeat 403/409/410): report nothing
    stopping: bool = False  # the runner is shutting down: start nothing new


@dataclass
class Verdict:
    outcome: str  # completed | failed | retry | handoff | rate_limited | cancelled
    reason: str
    detail: str | None = None


@dataclass
class UnsentTranscript:
    """A run whose transcript waits for its try's verdict before it is uploaded."""

    number: int
    result: Result
    seconds: float
    spent: Usage
    agent: str
    log_dir: Path


@dataclass
class AgentRun:
    """One agent process. A try has one, or two when its resume failed and it started afresh."""

    number: int  # the try
    seconds: float
    spent: Usage  # what this run spent (runner.usage), not the session's running total
    session_id: str | None
    resumed: bool


@dataclass
class JobState(Generic[J]):
    """One execution of a job: a task job (``TaskJob``) or a plan job."""

    job: J
    worktree: Path
    base_sha: str
    mirror: RepoMirror
    home: Path | None = None  # the agent's HOME for the whole job (sessions live there)
    results: list[Result] = field(default_factory=list)
    runs: list[AgentRun] = field(default_factory=list)  # one per result
    ledger: UsageLedger = field(default_factory=UsageLedger)
    attempt_log: list[TryRecord] = field(default_factory=list)
    unsent: list[UnsentTranscript] = field(default_factory=list)
    run_count: int = 0  # agent runs so far (a try has one, or two after a failed resume)
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # this execution of the job

    def log_try(self, number: int, verdict: Verdict, result: Result) -> None:
        outcome = "failed" if verdict.outcome == "retry" else verdict.outcome
        runs = [run for run in self.runs if run.number == number]
        self.attempt_log.append(TryRecord(
            try_=number, outcome=TryOutcome(outcome), reason=verdict.reason[:REASON_LIMIT],
            seconds=round(sum(run.seconds for run in runs), 3),
            session_id=runs[-1].session_id if runs else result.session_id,
            resumed=runs[-1].resumed if runs else False,
            usage=usage_fields(run.spent for run in runs),
        ))  # fmt: skip

    def facts(self) -> dict[str, Any]:
        """Summed over every run of every try: what the bot records for the attempt."""
        seconds = round(sum(run.seconds for run in self.runs), 3)
        summary = self.results[-1].final_text if self.results else None
        usage = usage_fields(run.spent for run in self.runs)
        return {"agent_seconds": seconds, "usage": usage, "summary": _cap(summary),
                "attempt_log": tuple(self.attempt_log)}  # fmt: skip


def usage_fields(spent: Iterable[Usage]) -> WireUsage:
    """The report's `usage`: summed tokens, and the summed cost when any run reported one."""
    runs = list(spent)
    costs = [u.cost_usd for u in runs if u.cost_usd is not None]
    notes = list(dict.fromkeys(u.cost_note for u in runs if u.cost_note))
    return WireUsage(
        input_tokens=sum(u.input_tokens for u in runs),
        output_tokens=sum(u.output_tokens for u in runs),
        cost_usd=round(sum(costs), 6) if costs else None,
        cost_note="; ".join(notes)[:COST_NOTE_MAX] or None,
    )


def fresh_home(path: Path) -> None:
    """An empty, private HOME for a job's agent runs (a stale one from a crash is discarded)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)


def completed(job: Job, head_sha: str, **facts: Any) -> CompletedResult:
    return CompletedResult(branch=job.branch, head_sha=head_sha, **facts)


def handoff(
    job: Job, reason: str, head_sha: str | None, note: str | None, **facts: Any
) -> HandoffResult:
    """A handoff; an adapter's reason the protocol does not name becomes ``other``."""
    return HandoffResult(branch=job.branch, reason=handoff_reason(reason), head_sha=head_sha,
                         note=_cap(note) or "", **facts)  # fmt: skip


def rate_limited(
    job: Job, reason: str, retry_at: float | None, agent: str, detail: str | None, **facts: Any
) -> RateLimitedResult:
    return RateLimitedResult(branch=job.branch, reason=reason[:REASON_LIMIT], retry_at=retry_at,
                             agent=agent, detail=_cap(detail), **facts)  # fmt: skip


def failed(job: Job, reason: str, detail: str | None = None, **facts: Any) -> FailedResult:
    """A failure; an adapter's reason the protocol does not name becomes ``other`` (the detail
    keeps its words)."""
    return FailedResult(branch=job.branch, reason=wire_failure_reason(reason),
                        detail=_cap(detail), **facts)  # fmt: skip


def scrub_report(report: JobResult, token: str) -> JobResult:
    """``report`` without the job's repository token in its free text."""
    if not token:
        return report
    update = {
        key: value.replace(token, "***")
        for key in ("detail", "note", "summary")
        if isinstance(value := getattr(report, key, None), str) and token in value
    }
    return report.model_copy(update=update) if update else report


def _cap(text: str | None) -> str | None:
    return text if text is None or len(text) <= TEXT_LIMIT else "[...]\n" + text[-TEXT_LIMIT + 6 :]


def failure_reason(result: Result) -> tuple[str, str]:
    """(reason, detail) for an agent run that did not complete."""
    reason = result.reason if result.outcome is Outcome.FAILED else result.outcome.value
    head = f"agent {result.outcome.value}: {result.reason}"
    if result.retry_at:
        head += f" (retry at {result.retry_at.isoformat()})"
    return reason, f"{head}\n{result.detail}" if result.detail else head


def clip(text: str, limit: int = TAIL_CHARS) -> str:
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


def prune_logs(root: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest job folders under ``root``; the removed ones."""
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return []
    folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return folders[keep:]


def slug(job_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in job_id)


def setup_detail(result: SetupResult) -> str:
    """Why the setup command failed, with its output (capped by the supervisor; when it was
    stopped, the output's last line says why: ``runner.setup``)."""
    why = "was stopped" if result.killed_by else f"failed (exit code {result.exit_code})"
    return f"the setup command {why}; its output:\n{result.output_tail}"


def runner_note(reason: str, stat: str, final_text: str | None) -> str:
    lines = [f"The runner handed this task off ({reason}); the work so far is on the branch."]
    lines += ["", "Files changed:", "", stat.strip() or "(none)"]
    if final_text and final_text.strip():
        last = "\n".join(final_text.strip().splitlines()[-15:])
        lines += ["", "The agent's last words:", "", clip(last, 2000)]
    return "\n".join(lines)


def read_note(worktree: Path) -> str | None:
    path = worktree / HANDOFF_FILE
    try:
        with path.open("rb") as fh:
            text = fh.read(INSTRUCTION_LIMIT).decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


# -- commands and git in the worktree -------------------------------------------------------


async def run_shell(
    command: str,
    cwd: Path,
    timeout_s: float,
    cancel: Flag,
    *,
    stall_timeout_s: float | None = None,
    pid_dir: Path | None = None,
) -> CommandResult:
    """`/bin/sh -c command` in `cwd` (the test command), under the runner's supervisor, with the
    agents' scrubbed environment and a private HOME."""
    with private_home("stoneforge-command-home-") as home:
        return await run_command(command, cwd, env=build_env({}, home=home), timeout_s=timeout_s,
                                 stall_timeout_s=stall_timeout_s, kill_grace_s=5, cancel=cancel,
                                 pid_dir=pid_dir)  # fmt: skip


def worktree_git(worktree: Path, *args: str) -> str:
    """Local, read-mostly git in a worktree (never the network, never a token)."""
    try:
        proc = subprocess.run(["git", *args], cwd=worktree, env=git_env(), capture_output=True,
                              text=True, check=True, timeout=120)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", None) or exc
        raise GitError(f"git {' '.join(args)} in {worktree}: {stderr}") from None
    return proc.stdout


def exclude_scratch(worktree: Path) -> None:
    """Keep `.stoneforge/` (the agent's handoff note) out of every commit of this repository."""
    path = _exclude_file(worktree)
    line = f"/{SCRATCH_DIR}/"
    current = path.read_text() if path.is_file() else ""
    if line not in current.splitlines():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(("" if not current or current.endswith("\n") else "\n") + line + "\n")


def _exclude_file(worktree: Path) -> Path:
    """The repository's ``info/exclude``, shared by its worktrees: in the common git dir that
    the worktree's git directory names in ``commondir`` (git answers anything else)."""
    gitdir = worktree_admin_dir(worktree)
    try:
        common = gitdir / (gitdir / "commondir").read_text().strip()
    except (OSError, UnicodeDecodeError):
        path = Path(worktree_git(worktree, "rev-parse", "--git-path", "info/exclude").strip())
        return path if path.is_absolute() else worktree / path
    return common / "info" / "exclude"


def worktree_changed(worktree: Path, base_sha: str) -> bool:
    if worktree_git(worktree, "status", "--porcelain", "--untracked-files=all").strip():
        return True
    return worktree_git(worktree, "rev-parse", "HEAD").strip() != base_sha


def diff_stat(worktree: Path, base_sha: str) -> str:
    return worktree_git(worktree, "diff", "--stat", base_sha, "HEAD")


def commit_work(j: JobState[TaskJob], handoff_reason: str) -> str | None:
    """Commit everything (not `.stoneforge/`); the head to push, or None when nothing changed."""
    title = j.job.title or f"Task #{j.job.issue}"
    trailers = f"Stoneforge-Task: {j.job.repo}#{j.job.issue}\n"
    if handoff_reason:
        title = f"WIP: {title}"
        trailers += f"Stoneforge-Handoff: {handoff_reason}\n"
    sha = j.mirror.commit_all(j.worktree, f"{title}\n\n{trailers}",
                              author_name=AUTHOR_NAME, author_email=AUTHOR_EMAIL)  # fmt: skip
    if sha is None:  # the agent may have committed itself, against the rules
        head = j.mirror.head_sha(j.worktree)
        sha = head if head != j.base_sha else None
    return sha
