"""A review job (``bot.core.protocol.ReviewJob``): the steward's, before it merges a pull request
on a repository with ``review`` configured. The review agent reads the head and writes a verdict.

Per job:

1. Fetch the base and the task's branch into the mirror; a branch no longer at ``head`` is not
   reviewed (``branch_moved``: the steward reviews the new head).
2. A detached worktree at the head (``<work_dir>/review/<job>``: nothing is committed or
   pushed, and whatever the agent changes goes with the worktree), and the diff against the
   base (``git diff base...head``) with the files it changes.
3. The verdict file lives outside the worktree (``<work_dir>/reviews/<job>/review.json``,
   also ``STONEFORGE_REVIEW_FILE``), given to the adapter in ``RunRequest.extra_dirs``; an
   adapter whose CLI writes only in its worktree gets ``.stoneforge/review.json`` there instead.
4. The review prompt (``runner.prompt_review``) and the agent's run through the task jobs'
   machinery (``runner.tries``: transcripts, usage, budgets, rate-limit pauses).
5. The verdict is read and checked (``read_verdict``): ``event`` ``APPROVE`` or
   ``REQUEST_CHANGES``, a ``body``, line ``comments``. A comment GitHub could not place (a
   file the diff does not change, a line the diff does not show) is folded into the body as
   ``path:line: text``, not refused. A missing or invalid verdict gets one more try with the
   errors listed.
6. The result: ``ReviewedResult`` on ``head``; ``no_changes`` when no valid verdict was written
   twice; the agent's failure, a rate limit, or a ``runner_shutdown`` handoff as for any job.

The runner never holds more than the job carries: the repository token to fetch, nothing to
push with. The bot posts the verdict as the App (``bot.results``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.protocol import (
    REVIEW_BODY_MAX,
    REVIEW_COMMENTS_MAX,
    REVIEW_EVENTS,
    JobResult,
    ReviewedResult,
    ReviewJob,
    ReviewLine,
)
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
)
from runner.planning import read_bounded
from runner.prompt_review import build_review_followup, build_review_prompt
from runner.rebase import fetch_at
from runner.tries import AgentTries

log = logging.getLogger(__name__)

REVIEW_FILE_ENV = "STONEFORGE_REVIEW_FILE"
REVIEW_FILE_NAME = "review.json"
VERDICT_MAX_BYTES = 200_000
NO_VERDICT = "the review agent wrote no valid verdict, also when asked again"
SHUTDOWN_NOTE = "The runner shut down while the review agent reviewed; no review was sent."
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def diff_lines(diff: str) -> dict[str, set[int]]:
    """Per file of a unified diff, the line numbers of the new side it shows (added and
    context lines): where GitHub can place a line comment."""
    shown: dict[str, set[int]] = {}
    path: str | None = None
    line = 0
    for text in diff.splitlines():
        if text.startswith("diff --git "):
            path = None
        elif text.startswith("+++ "):
            name = text[4:].strip()
            path = name[2:] if name.startswith("b/") else None
            if path is not None:
                shown.setdefault(path, set())
        elif (hunk := HUNK.match(text)) is not None:
            line = int(hunk.group(1))
        elif path is not None and text[:1] in (" ", "+") and not text.startswith("+++"):
            shown[path].add(line)
            line += 1
    return shown


@dataclass
class VerdictRead:
    """What the review file held: the checked verdict (None when there was none) and errors."""

    verdict: dict[str, Any] | None
    errors: list[str] = field(default_factory=list)


def read_verdict(path: Path, placeable: Mapping[str, set[int]]) -> VerdictRead:
    """The review file at ``path``, checked (see the module doc); never raises.
    ``placeable``: the lines each changed file's diff shows (``diff_lines``)."""
    data, error = read_bounded(path, VERDICT_MAX_BYTES, "review file")
    if data is None:
        return VerdictRead(None, [error or "no review file"])
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        return VerdictRead(None, [f"the review file does not hold JSON: {exc}"])
    if not isinstance(raw, dict):
        return VerdictRead(None, ["the review file must hold one JSON object (the verdict)"])
    errors: list[str] = []
    event = raw.get("event")
    if event not in REVIEW_EVENTS:
        errors.append(f"'event' must be one of {', '.join(REVIEW_EVENTS)} (got {event!r})")
    body = raw.get("body", "")
    if not isinstance(body, str):
        errors.append("'body' must be a string")
        body = ""
    items = raw.get("comments", [])
    if not isinstance(items, list):
        errors.append("'comments' must be a list")
        items = []
    comments: list[ReviewLine] = []
    folded: list[str] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"comments[{n}] must be an object with path, line and body")
            continue
        where, line, text = item.get("path"), item.get("line"), item.get("body")
        if not isinstance(where, str) or not where or not isinstance(text, str) or not text.strip():
            errors.append(f"comments[{n}] needs a 'path' and a non-empty 'body'")
            continue
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            errors.append(f"comments[{n}] needs a 'line' (a line number, 1 or more)")
            continue
        if line in placeable.get(where, ()) and len(comments) < REVIEW_COMMENTS_MAX:
            comments.append(ReviewLine(path=where, line=line, body=text.strip()[:10_000]))
        else:  # GitHub cannot place it: it goes in the body
            folded.append(f"- `{where}:{line}`: {text.strip()}")
    if event == "REQUEST_CHANGES" and not body.strip() and not comments and not folded:
        errors.append("a verdict that requests changes must say which, in 'body' or 'comments'")
    if errors:
        return VerdictRead(None, errors)
    if folded:
        body = (body.strip() + "\n\n" if body.strip() else "") + "\n".join(folded)
    if len(body) > REVIEW_BODY_MAX:
        body = body[: REVIEW_BODY_MAX - 12] + "\n[... cut]"
    return VerdictRead({"event": event, "body": body.strip(), "comments": tuple(comments)})


@dataclass
class ReviewSpace:
    worktree: Path
    folder: Path  # the review file's folder: outside the worktree, or its `.stoneforge/`
    inside: bool = False

    @property
    def review_file(self) -> Path:
        return self.folder / REVIEW_FILE_NAME


async def run_review(
    worker: str,
    job: ReviewJob,
    mirror: RepoMirror,
    work_dir: Path,
    tries: AgentTries,
    ctl: Control,
    bot: BotClient | None,
) -> JobResult | None:
    """Review ``job.head`` (see the module doc): its result, or None when it stopped being
    ours."""
    agent_name = tries.agent_override or job.agent.name
    try:
        adapter = get_adapter(agent_name)
    except ValueError as exc:
        return failed(job, "unknown_agent", str(exc))
    if (refused := await fetch_at(mirror, job, job.head)) is not None:
        return refused
    branch, base = f"refs/remotes/origin/{job.branch}", f"refs/remotes/origin/{job.base}"
    key = f"{slug(job.job_id)}-{uuid.uuid4().hex[:8]}"
    path = work_dir / "review" / key
    inside = not getattr(adapter, "writes_outside_workdir", True)
    space: ReviewSpace | None = None
    try:
        diff = await asyncio.to_thread(mirror.diff_since_fork, base, branch)
        files = await asyncio.to_thread(mirror.changed_files, base, branch)
        worktree = await asyncio.to_thread(mirror.add_detached_worktree, path, branch)
        folder = worktree / SCRATCH_DIR if inside else work_dir / "reviews" / key
        space = ReviewSpace(worktree, folder, inside)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700, parents=True)
        j = JobState(job, worktree, job.head, mirror)
        async with tries.job_home(j):
            return await _tries(worker, j, space, diff, files, adapter, agent_name, tries, ctl, bot)
    except (GitError, OSError) as exc:
        return failed(job, "git_error", str(exc))
    finally:
        if space is not None and not space.inside:
            shutil.rmtree(space.folder, ignore_errors=True)
        try:
            await asyncio.to_thread(mirror.remove_worktree, path)
        except GitError as exc:
            log.warning("review_worktree_not_removed path=%s: %s", path, exc)


async def _tries(
    worker: str,
    j: JobState[ReviewJob],
    space: ReviewSpace,
    diff: str,
    files: list[str],
    adapter: Any,
    agent_name: str,
    tries: AgentTries,
    ctl: Control,
    bot: BotClient | None,
) -> JobResult | None:
    job, errors = j.job, list[str]()
    placeable = diff_lines(diff)
    read = VerdictRead(None)
    for number in (1, 2):
        if ctl.cancelled:
            return None
        if ctl.stopping:
            return handoff(job, "runner_shutdown", None, SHUTDOWN_NOTE, **j.facts())
        if tries.budget_left(j) == 0.0:
            return failed(job, "budget", "the task's budget is spent", **j.facts())
        prompt = build_review_prompt(
            job, space.worktree, space.review_file, diff, files, errors=errors
        )
        followup = build_review_followup(errors, space.review_file) if errors else None
        space.review_file.unlink(missing_ok=True)
        result = await tries.attempt(
            worker, j, adapter, job.agent, number, ctl, prompt=prompt, followup=followup,
            extra_env={REVIEW_FILE_ENV: str(space.review_file)},
            extra_dirs=[] if space.inside else [space.folder],
            edit_files=[space.review_file] if space.inside else [],
        )  # fmt: skip
        read = await asyncio.to_thread(read_verdict, space.review_file, placeable)
        verdict = judge(result, read, ctl)
        j.log_try(number, verdict, result)
        if bot is not None:
            await tries.send_transcripts(j, verdict, bot)
        if verdict.outcome == "retry" and number == 1:
            errors = read.errors
            log.info("review_retry job=%s errors=%d", job.job_id, len(errors))
            continue
        match verdict.outcome:
            case "cancelled":
                return None
            case "handoff":
                return handoff(job, "runner_shutdown", None, SHUTDOWN_NOTE, **j.facts())
            case "rate_limited":
                return tries.rate_limited_result(j, verdict.reason, agent_name)
            case "failed":
                return failed(job, verdict.reason, verdict.detail, **j.facts())
        if read.verdict is None:
            detail = f"{NO_VERDICT}: " + "; ".join(read.errors)
            return failed(job, "no_changes", detail, **j.facts())
        log.info("reviewed job=%s head=%s event=%s comments=%d", job.job_id, job.head,
                 read.verdict["event"], len(read.verdict["comments"]))  # fmt: skip
        return ReviewedResult(branch=job.branch, head_sha=job.head, **read.verdict, **j.facts())
    raise AssertionError("unreachable")


def judge(result: Result, read: VerdictRead, ctl: Control) -> Verdict:
    """What one review try amounts to; ``retry`` is a try whose verdict is missing or
    invalid."""
    if ctl.cancelled:
        return Verdict("cancelled", "cancelled")
    if ctl.interrupt.is_set():
        return Verdict("handoff", "runner_shutdown")
    if result.outcome is Outcome.RATE_LIMITED:
        return Verdict("rate_limited", result.reason)
    if read.verdict is not None:
        return Verdict("completed", "success")
    if result.outcome is not Outcome.COMPLETED:
        return Verdict("failed", *failure_reason(result))
    return Verdict("retry", "no_verdict", "\n".join(read.errors))
