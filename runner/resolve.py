"""A resolve_conflicts job (``bot.core.protocol.ResolveConflictsJob``): the steward's, after a
rebase job met conflicts. An agent resolves them in the middle of the rebase.

Per job:

1. As for a rebase job (``runner.rebase``): fetch the base and the branch; the branch must still
   be at ``expected_head`` and hold only the App's commits, or nothing is rewritten
   (``branch_moved``).
2. A detached worktree at the branch's head (``<work_dir>/resolve/<job>``), and ``git rebase
   origin/<base>``, left stopped at the first conflict (not aborted).
3. At each stop: the agent runs in that worktree (``runner.tries``: transcripts, usage, budget,
   rate-limit pauses), told the conflicted files (with their markers), the issue, the task's
   diff and the base's commits that touched those files. The runner then checks that no
   conflict marker is left in those files, stages them, and continues the rebase (``git -c
   core.editor=true rebase --continue``), which may stop again at a later commit.
4. The test command, when the repository has one, then ``git push
   --force-with-lease=<branch>:<expected_head>``; pushed: ``completed`` with the new head.

Whatever falls short (markers left, an agent that failed, tests that fail) is
``resolve_failed`` with the files in ``detail``; nothing is pushed. The worktree is removed
whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from bot.core.protocol import CompletedResult, JobResult, ResolveConflictsJob
from runner.agents import get_adapter
from runner.agents.base import Outcome, Result
from runner.bot_client import BotClient
from runner.git import GitError, RepoMirror
from runner.job import (
    AUTHOR_EMAIL,
    AUTHOR_NAME,
    Control,
    JobState,
    Verdict,
    failed,
    failure_reason,
    handoff,
    run_shell,
    slug,
)
from runner.prompt import build_resolve_prompt
from runner.rebase import fetch_ours
from runner.tries import AgentTries

log = logging.getLogger(__name__)

#: the lines git writes around a conflict (``=======`` alone is a Markdown heading's underline)
MARKER = re.compile(r"^(<{7}|>{7}|\|{7})( |$)", re.MULTILINE)
MAX_STOPS = 50  # commits a rebase may stop at before the job gives up
FILE_LIMIT = 20_000  # characters of each conflicted file in the prompt
SHUTDOWN_NOTE = "The runner shut down while an agent resolved conflicts; nothing was pushed."


def markers_left(worktree: Path, files: list[str]) -> list[str]:
    """The files that still hold a conflict marker."""
    left = []
    for name in files:
        path = worktree / name
        if path.is_file() and not path.is_symlink():
            if MARKER.search(path.read_text(errors="replace")):
                left.append(name)
    return left


def read_conflicted(worktree: Path, files: list[str]) -> list[tuple[str, str]]:
    """Each conflicted file's text, markers and all (capped); a deleted one says so."""
    out = []
    for name in files:
        path = worktree / name
        if not path.is_file() or path.is_symlink():
            out.append((name, "(deleted on one side)"))
            continue
        text = path.read_text(errors="replace")
        out.append((name, text if len(text) <= FILE_LIMIT else text[:FILE_LIMIT] + "\n[...]"))
    return out


async def run_resolve(
    worker: str,
    job: ResolveConflictsJob,
    mirror: RepoMirror,
    work_dir: Path,
    tries: AgentTries,
    ctl: Control,
    bot: BotClient | None,
) -> JobResult | None:
    """Rebase ``job.branch`` onto ``job.base`` with an agent resolving each stop's conflicts,
    test, and push with a lease (see the module doc). None when the bot took the job back."""
    branch, base = f"refs/remotes/origin/{job.branch}", f"refs/remotes/origin/{job.base}"
    try:
        adapter = get_adapter(tries.agent_override or job.agent.name)
    except ValueError as exc:
        return failed(job, "unknown_agent", str(exc))
    if (refused := await fetch_ours(mirror, job)) is not None:
        return refused
    path = work_dir / "resolve" / slug(job.job_id)
    try:
        diff = await asyncio.to_thread(mirror.diff_since_fork, base, branch)
        worktree = await asyncio.to_thread(mirror.add_detached_worktree, path, branch)
        j = JobState(job, worktree, job.expected_head, mirror)
        seen: set[str] = set(job.conflicts)
        async with tries.job_home(j):
            try:
                return await _resolve(worker, j, adapter, base, diff, tries, ctl, bot, seen)
            except GitError as exc:  # mid-rebase: a resolution git would not take
                detail = "\n".join(sorted(seen)) + f"\n\n{exc}"
                return failed(job, "resolve_failed", detail, **j.facts())
    except GitError as exc:
        return failed(job, "git_error", str(exc))
    finally:
        try:
            await asyncio.to_thread(mirror.remove_worktree, path)
        except GitError as exc:
            log.warning("resolve_worktree_not_removed path=%s: %s", path, exc)


async def _resolve(
    worker: str,
    j: JobState[ResolveConflictsJob],
    adapter: Any,
    base: str,
    diff: str,
    tries: AgentTries,
    ctl: Control,
    bot: BotClient | None,
    seen: set[str],
) -> JobResult | None:
    job, mirror, worktree = j.job, j.mirror, j.worktree
    who = {"committer_name": AUTHOR_NAME, "committer_email": AUTHOR_EMAIL}
    files = await asyncio.to_thread(mirror.rebase_step, worktree, base, **who)
    seen.clear()
    for stop in range(1, MAX_STOPS + 1):
        if not files:
            break
        seen.update(files)
        if ctl.cancelled:
            return None
        if ctl.stopping or ctl.interrupt.is_set():
            return handoff(job, "runner_shutdown", None, SHUTDOWN_NOTE, **j.facts())
        if tries.budget_left(j) == 0.0:
            return failed(job, "budget", "the task's budget is spent", **j.facts())
        # The base's commits that touched these files since the branch forked.
        touching = await asyncio.to_thread(mirror.log_touching, job.expected_head, base, files)
        conflicted = await asyncio.to_thread(read_conflicted, worktree, files)
        prompt = build_resolve_prompt(job, worktree, conflicted, diff, touching)
        log.info("resolve_stop job=%s stop=%d files=%s", job.job_id, stop, files)
        result = await tries.attempt(
            worker, j, adapter, job.agent, stop, ctl, prompt=prompt, followup=None
        )
        verdict = await asyncio.to_thread(judge, result, worktree, files, ctl)
        j.log_try(stop, verdict, result)
        if bot is not None:
            await tries.send_transcripts(j, verdict, bot)
        match verdict.outcome:
            case "cancelled":
                return None
            case "handoff":
                return handoff(job, "runner_shutdown", None, SHUTDOWN_NOTE, **j.facts())
            case "rate_limited":
                agent_name = tries.agent_override or job.agent.name
                return tries.rate_limited_result(j, verdict.reason, agent_name)
            case "failed":
                detail = "\n".join(sorted(seen)) + f"\n\n{verdict.reason}: {verdict.detail or ''}"
                return failed(job, "resolve_failed", detail.strip(), **j.facts())
        unmerged = await asyncio.to_thread(mirror.stage, worktree, files)
        if unmerged:
            detail = "\n".join(sorted(seen)) + "\n\nstill unmerged: " + ", ".join(unmerged)
            return failed(job, "resolve_failed", detail, **j.facts())
        files = await asyncio.to_thread(mirror.rebase_step, worktree, None, **who)
    else:
        detail = "\n".join(sorted(seen)) + f"\n\nthe rebase stopped more than {MAX_STOPS} times"
        return failed(job, "resolve_failed", detail, **j.facts())
    new_head = await asyncio.to_thread(mirror.head_sha, worktree)
    if job.commands.test:
        limit = job.timeouts.test_s or tries.test_timeout_s
        stall = job.timeouts.stall_s or tries.stall_timeout_s
        tests = await run_shell(job.commands.test, worktree, limit, ctl.interrupt,
                                stall_timeout_s=stall)  # fmt: skip
        if ctl.cancelled:
            return None
        if not tests.ok:
            detail = "\n".join(sorted(seen)) + "\n\nthe test command failed after the "
            detail += f"resolution:\n{tests.output_tail}"
            return failed(job, "resolve_failed", detail, **j.facts())
    pushed = await asyncio.to_thread(
        mirror.push_with_lease, worktree, job.branch, job.token, job.expected_head
    )
    if not pushed:
        return failed(job, "branch_moved", f"the branch moved from {job.expected_head}")
    log.info("resolved job=%s %s -> %s files=%s", job.job_id, job.expected_head, new_head, seen)
    summary = f"Rebased onto {job.base}"
    summary += f"; the agent resolved {', '.join(sorted(seen))}." if seen else "."
    facts = j.facts() | {"summary": summary}
    return CompletedResult(branch=job.branch, head_sha=new_head, **facts)


def judge(result: Result, worktree: Path, files: list[str], ctl: Control) -> Verdict:
    """What one stop's agent run amounts to: ``completed`` when no marker is left."""
    outcome = result.outcome
    if ctl.cancelled:
        return Verdict("cancelled", "cancelled")
    if ctl.interrupt.is_set():
        return Verdict("handoff", "runner_shutdown")
    if outcome is Outcome.RATE_LIMITED:
        return Verdict("rate_limited", result.reason)
    if outcome is not Outcome.COMPLETED:
        return Verdict("failed", *failure_reason(result))
    left = markers_left(worktree, files)
    if left:
        return Verdict("failed", "markers_left", "conflict markers left in " + ", ".join(left))
    return Verdict("completed", "success")
