"""A rebase job (``bot.core.protocol.RebaseJob``): the steward's, for a pull request that
conflicts with its base. Git does the work; no agent runs.

Per job:

1. Fetch the base and the task's branch into the mirror. The branch must still be at
   ``expected_head`` (the head the bot saw), and every commit on it since the base (merges
   aside: the rebase drops them) must be the App's (author ``stoneforge[bot]``, as
   ``runner.job.commit_work`` writes them). Otherwise nothing is rewritten:
   ``branch_moved``, with what was found.
2. A detached worktree at the branch's head (its own folder under ``<work_dir>/rebase``, never
   one of the pool's: no branch is taken from a warm worktree), and ``git rebase
   origin/<base>``. A conflict aborts the rebase: ``rebase_conflict`` with the conflicted files.
3. The test command, when the repository has one; a failure is a conflict git could not see
   (``rebase_conflict``, with the output).
4. ``git push --force-with-lease=<branch>:<expected_head>``: refused when someone pushed
   meanwhile (``branch_moved``). Pushed: ``completed`` with the new head.

The worktree is removed whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.core.protocol import CompletedResult, JobResult, RebaseJob, ResolveConflictsJob, ReviewJob
from runner.git import GitError, RepoMirror
from runner.job import AUTHOR_EMAIL, AUTHOR_NAME, Control, failed, run_shell, slug

log = logging.getLogger(__name__)

NOT_OURS = "commits on the branch the App did not make"


StewardJob = RebaseJob | ResolveConflictsJob | ReviewJob  # the steward's jobs, on a task's branch


async def fetch_at(mirror: RepoMirror, job: StewardJob, expected: str) -> JobResult | None:
    """Fetch the base and the branch into the mirror; a failure unless the branch is still at
    ``expected``, the head the bot saw (None: go on). Shared by the steward's jobs."""
    try:
        await asyncio.to_thread(mirror.fetch, job.token, branch=job.base, want=job.base_sha)
        await asyncio.to_thread(mirror.fetch, job.token, branch=job.branch)
    except GitError as exc:
        return failed(job, "git_error", str(exc))
    head = await asyncio.to_thread(mirror.remote_sha, job.branch)
    if head != expected:
        return failed(job, "branch_moved", f"the branch is at {head}, not {expected}")
    return None


async def fetch_ours(mirror: RepoMirror, job: RebaseJob | ResolveConflictsJob) -> JobResult | None:
    """``fetch_at`` the head the bot saw, and refuse to rewrite the branch unless every commit
    on it since the base is the App's (None: go on). Shared by the rebase and the resolve
    jobs."""
    branch, base = f"refs/remotes/origin/{job.branch}", f"refs/remotes/origin/{job.base}"
    if (refused := await fetch_at(mirror, job, job.expected_head)) is not None:
        return refused
    foreign = await asyncio.to_thread(mirror.foreign_commits, base, branch, author_name=AUTHOR_NAME)
    if foreign:
        return failed(job, "branch_moved", f"{NOT_OURS}:\n" + "\n".join(foreign[:20]))
    return None


async def run_rebase(
    job: RebaseJob,
    mirror: RepoMirror,
    work_dir: Path,
    ctl: Control,
    *,
    test_timeout_s: float = 900,
    stall_timeout_s: float | None = None,
) -> JobResult | None:
    """Rebase ``job.branch`` onto ``job.base`` and push it with a lease (see the module doc).
    None when the bot took the job back meanwhile."""
    branch, base = f"refs/remotes/origin/{job.branch}", f"refs/remotes/origin/{job.base}"
    if (refused := await fetch_ours(mirror, job)) is not None:
        return refused
    path = work_dir / "rebase" / slug(job.job_id)
    try:
        worktree = await asyncio.to_thread(mirror.add_detached_worktree, path, branch)
        conflicts = await asyncio.to_thread(
            mirror.rebase, worktree, base, committer_name=AUTHOR_NAME,
            committer_email=AUTHOR_EMAIL,
        )  # fmt: skip
        if conflicts:
            log.info("rebase_conflict job=%s files=%s", job.job_id, conflicts)
            return failed(job, "rebase_conflict", "\n".join(conflicts))
        new_head = await asyncio.to_thread(mirror.head_sha, worktree)
        if new_head == job.expected_head:  # GitHub sees a conflict git does not: an agent's
            return failed(job, "rebase_conflict", f"already on {job.base}; nothing to replay")
        if job.commands.test:
            limit = job.timeouts.test_s or test_timeout_s
            stall = job.timeouts.stall_s or stall_timeout_s
            tests = await run_shell(job.commands.test, worktree, limit, ctl.interrupt,
                                    stall_timeout_s=stall)  # fmt: skip
            if ctl.cancelled:
                return None
            if not tests.ok:
                detail = f"the test command failed after the rebase:\n{tests.output_tail}"
                return failed(job, "rebase_conflict", detail)
        pushed = await asyncio.to_thread(
            mirror.push_with_lease, worktree, job.branch, job.token, job.expected_head
        )
        if not pushed:
            return failed(job, "branch_moved", f"the branch moved from {job.expected_head}")
        log.info("rebased job=%s %s -> %s", job.job_id, job.expected_head, new_head)
        return CompletedResult(
            branch=job.branch, head_sha=new_head, summary=f"Rebased onto {job.base}."
        )
    except GitError as exc:
        return failed(job, "git_error", str(exc))
    finally:
        try:
            await asyncio.to_thread(mirror.remove_worktree, path)
        except GitError as exc:
            log.warning("rebase_worktree_not_removed path=%s: %s", path, exc)
