"""The one status comment per task issue, and a task's reason in words (``describe_reason``).

Pure: values in, text out. The caller upserts the comment by its hidden marker
(``STATUS_MARKER``, always the first line), so there is exactly one status comment per issue
and it is edited in place as the task moves on.

The comment reads top to bottom as: a one-line headline with the status word, a short list of
facts (blockers, runner, attempt, pull request, agent time and cost, links to the agents'
transcripts), then what the maintainer can do next. Status words, by precedence:

====================================  =================================================
``Merged`` / ``Failed — needs a       the task's terminal state wins over everything
human`` / ``Cancelled``
``Blocked: configuration error``      ``config_error`` is set
``Blocked: dependency cycle``         ``cycle`` is not empty
``Blocked: missing dependency``       ``missing`` is not empty
``Merging``                           in review and ``merging`` is set
``Running`` / ``In review``           the task's state
``Waiting on blockers``               queued and ``waiting_on`` is not empty
``Queued``                            queued and ready
====================================  =================================================

The pull request body is ``bot.core.render_pull``; the formatting both share (links, times,
money, inline code) is ``bot.core.render_text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.lifecycle import (
    AwaitingReview,
    BranchHeld,
    CancelCause,
    Cancelled,
    CancelledBy,
    ChangesRequested,
    ChecksFailed,
    Conflicted,
    DispatchRetry,
    Failed,
    HandedOff,
    LeaseExpired,
    RateLimited,
    Reason,
    Rebasing,
    Resolving,
    Restarted,
    Reviewing,
)
from bot.core.model import IssueRef, Task, TaskState
from bot.core.render_text import (
    TranscriptLink,
    code,
    format_cost,
    format_duration,
    format_utc,
    issue_link,
    pull_link,
)

STATUS_MARKER = "<!-- stoneforge:status -->"
FAILED = "Failed — needs a human"
#: the status words of a task that cannot start until something is fixed
BLOCKED = frozenset(
    ("Blocked: configuration error", "Blocked: dependency cycle", "Blocked: missing dependency")
)
_DETAIL_MAX = 1500  # characters of a failure reason or config error shown
_LINKS_SHOWN = 12  # transcript links in the status comment (the newest ones)


@dataclass(frozen=True)
class StatusView:
    """Everything the status comment shows; the task plus what the graph and store know."""

    task: Task
    html_base: str  # "https://github.com" or "http://127.0.0.1:PORT"
    waiting_on: tuple[IssueRef, ...] = ()  # blockers not done yet
    cycle: tuple[IssueRef, ...] = ()  # members of the dependency cycle the task is in
    missing: tuple[IssueRef, ...] = ()  # blockers that do not exist or cannot be read
    cost_usd: float | None = None  # None: use task.cost_usd
    queue_position: int | None = None  # 1 = next to be dispatched
    config_error: str | None = None
    merging: bool = False  # the steward is merging the pull request right now
    trigger_label: str = "agent-ready"
    transcripts: tuple[TranscriptLink, ...] = ()  # oldest first
    # Why a ready task is not dispatched now: the repository's spend today and its daily
    # budget, once spent; or the agents rate limits hold it from (agent, until), when no
    # agent may take it.
    held_budget: tuple[float, float] | None = None
    held_limits: tuple[tuple[str, float], ...] = ()


def render_status(view: StatusView) -> str:
    """The whole status comment, starting with ``STATUS_MARKER`` and ending with a newline."""
    task = view.task
    word = status_word(view)
    parts = [f"{STATUS_MARKER}\n**Stoneforge · {word}** — {_summary(view, word)}"]
    facts = _facts(view)
    if facts:
        parts.append("\n".join(f"- **{name}:** {value}" for name, value in facts))
    if word == "Blocked: dependency cycle":
        parts.append(render_cycle(view.cycle, view.html_base))
    elif word == "Blocked: missing dependency":
        parts.append(render_missing(task.ref, view.missing, view.html_base))
    elif word == "Blocked: configuration error" and view.config_error:
        parts.append(_code_block(view.config_error))
    elif word == FAILED and task.detail:
        parts.append(_code_block(task.detail))
    next_step = _next_step(view, word)
    if next_step:
        parts.append(f"**Next:** {next_step}")
    return "\n\n".join(parts) + "\n"


def render_transcript_links(links: Iterable[TranscriptLink]) -> str:
    """``attempt 1: [try 1](…), [try 2](…) · attempt 2: [try 1](…)``, newest last."""
    shown = tuple(links)
    cut = shown[:-_LINKS_SHOWN] if len(shown) > _LINKS_SHOWN else ()
    shown = shown[len(cut) :]
    groups: list[tuple[int, list[str]]] = []
    for link in shown:
        item = f"[try {link.try_number}]({link.url})"
        if groups and groups[-1][0] == link.attempt:
            groups[-1][1].append(item)
        else:
            groups.append((link.attempt, [item]))
    text = " · ".join(f"attempt {attempt}: {', '.join(items)}" for attempt, items in groups)
    return f"… {text}" if cut else text


def status_word(view: StatusView) -> str:
    """The headline's status word (see the module docstring for the precedence)."""
    state = view.task.state
    if state is TaskState.MERGED:
        return "Merged"
    if state is TaskState.FAILED:
        return FAILED
    if state is TaskState.CANCELLED:
        return "Cancelled"
    if view.config_error:
        return "Blocked: configuration error"
    if view.cycle:
        return "Blocked: dependency cycle"
    if view.missing:
        return "Blocked: missing dependency"
    if state is TaskState.RUNNING:
        return "Running"
    if state is TaskState.IN_REVIEW:
        return "Merging" if view.merging else "In review"
    return "Waiting on blockers" if view.waiting_on else "Queued"


def render_cycle(cycle: Iterable[IssueRef], html_base: str) -> str:
    """Short text naming the issues that block each other in a loop."""
    members = tuple(cycle)
    repo = members[0].repo if members else ""
    links = ", ".join(issue_link(ref, html_base, repo) for ref in members)
    return (
        f"These issues block each other in a loop: {links}. None of them can start until "
        "the loop is broken. Fix the cycle by removing one of these links "
        '(a "blocked by" relation or a "Blocked by #N" line in an issue body).'
    )


def render_missing(task_ref: IssueRef, missing: Iterable[IssueRef], html_base: str) -> str:
    """Short text naming the blockers of ``task_ref`` that do not exist or cannot be read."""
    links = ", ".join(issue_link(ref, html_base, task_ref.repo) for ref in missing)
    return (
        f"{task_ref} is blocked by issues that do not exist or that Stoneforge cannot read: "
        f"{links}. Remove the reference, fix the issue number, or install the app on the "
        "other repository."
    )


def describe_reason(reason: Reason) -> str:
    """A task's reason for its last state change, in words (kept as the task's ``detail``)."""
    match reason:
        case Restarted(by=by, via="command"):
            return f"restart: /stoneforge retry by @{by}"
        case Restarted():
            return "restart: relabeled"
        case Conflicted(pr=pr, base=base):
            return f"restart: pull request #{pr} conflicts with {base}"
        case Rebasing(pr=pr, base=base):
            return f"pull request #{pr} conflicts with {base}: rebasing it"
        case Resolving(pr=pr, base=base, files=files, round=round_):
            what = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "")
            return f"pull request #{pr} conflicts with {base} in {what}: resolving (round {round_})"
        case Reviewing(pr=pr, head=head, round=round_):
            return f"pull request #{pr}: the review agent reviews {head[:12]} (round {round_})"
        case BranchHeld(pr=pr, why=why):
            return f"pull request #{pr} not rebased: {why or 'its branch moved'}"
        case LeaseExpired():
            return "lease expired"
        case ChangesRequested(reviewer=reviewer):
            return f"changes requested by @{reviewer}"
        case ChecksFailed(pr=pr, round=rnd, checks=checks):
            names = ", ".join(repr(c) for c in checks)
            word = "check" if len(checks) == 1 else "checks"
            return f"pull request #{pr}: required {word} {names} red; agent fix round {rnd}"
        case AwaitingReview(reviewers=reviewers, on_head=on_head):
            who = ", ".join(f"@{r}" for r in reviewers)
            if on_head:
                return f"changes requested by {who} on the current head"
            return f"waiting for a re-review from {who}"
        case RateLimited(agent=agent, until=until):
            return f"{agent} is rate limited until {format_utc(until)}"
        case HandedOff(reason=why):
            return f"handoff: {why}"
        case DispatchRetry(error=error):
            return f"workflow dispatch failed, retrying: {error}"
        case Failed(reason=why, pr=pr):
            return f"pull request #{pr}: {why}" if pr is not None else why
        case Cancelled(cause=CancelCause.UNINSTALLED):
            return "App uninstalled"
        case Cancelled():
            return "label removed or issue closed"
        case CancelledBy(by=by):
            return f"cancelled by @{by} (/stoneforge cancel)"


# --- pieces ------------------------------------------------------------------------------------


def _summary(view: StatusView, word: str) -> str:
    if word == "Merged":
        return "the pull request for this issue has been merged."
    if word == FAILED:
        return "the last attempt did not succeed, so Stoneforge stopped."
    if word == "Cancelled" and isinstance(view.task.reason, CancelledBy):
        who = view.task.reason.by
        return (
            f"@{who} cancelled it with `/stoneforge cancel`; `/stoneforge retry` queues it again."
        )
    if word == "Cancelled":
        return "the issue was closed or its label removed; Stoneforge stopped working on it."
    if word == "Blocked: configuration error":
        return "the repository's Stoneforge configuration cannot be read."
    if word in BLOCKED:
        return "this task cannot start until its dependencies are fixed."
    if word == "Running":
        return "an agent is working on this issue."
    if word == "Merging":
        return "checks passed; the pull request is being merged."
    if word == "In review":
        return "the agent opened a pull request."
    if word == "Waiting on blockers":
        count = len(view.waiting_on)
        return f"this task starts when {_plural(count, 'blocker')} {_is_are(count)} done."
    if view.held_budget is not None:
        spent, limit = view.held_budget
        return (
            f"ready, but held back: the repository's daily budget is spent "
            f"({format_cost(spent)} of {format_cost(limit)} today, UTC)."
        )
    if view.held_limits:
        limits = " and ".join(
            f"{agent} is rate limited until {format_utc(until)}"
            for agent, until in view.held_limits
        )
        return f"ready, but held back: {limits}."
    if view.queue_position is not None:
        return f"ready, number {view.queue_position} in line for the next free runner."
    return "ready, waiting for a free runner."


def _facts(view: StatusView) -> list[tuple[str, str]]:
    task = view.task
    facts: list[tuple[str, str]] = []
    if task.blocked_by:
        facts.append(("Blocked by", _blocker_list(view)))
    if task.worker and task.state in (TaskState.RUNNING, TaskState.IN_REVIEW, TaskState.FAILED):
        facts.append(("Runner", code(task.worker)))
    if task.attempt:
        facts.append(("Attempt", str(task.attempt)))
    if task.pr_number is not None:
        pull = pull_link(task.repo, task.pr_number, view.html_base)
        if task.head_sha:
            pull += f" at `{task.head_sha[:7]}`"
        facts.append(("Pull request", pull))
    if task.review_id is not None and isinstance(task.reason, ChangesRequested | AwaitingReview):
        facts.append(("Review", describe_reason(task.reason)))  # "changes requested by @x"
    spent = []
    if task.agent_seconds is not None:
        spent.append(format_duration(task.agent_seconds))
    cost = view.cost_usd if view.cost_usd is not None else task.cost_usd
    if cost is not None:
        spent.append(format_cost(cost))
    if spent:
        facts.append(("Agent time", " · ".join(spent)))
    if view.transcripts:
        facts.append(("Transcripts", render_transcript_links(view.transcripts)))
    return facts


def _blocker_list(view: StatusView) -> str:
    """Each blocker with ✓ (done), ⏳ (waiting) or ✗ (missing or in the cycle)."""
    missing, waiting, cycle = set(view.missing), set(view.waiting_on), set(view.cycle)
    repo = view.task.repo
    items = []
    for ref in view.task.blocked_by:
        if ref in missing or ref in cycle:
            mark = "✗"
        elif ref in waiting:
            mark = "⏳"
        else:
            mark = "✓"
        items.append(f"{mark} {issue_link(ref, view.html_base, repo)}")
    return " · ".join(items)


def _next_step(view: StatusView, word: str) -> str:
    label = code(view.trigger_label)
    if word == "Merged":
        return ""
    if word == FAILED:
        return f"Remove and re-add {label} to retry."
    if word == "Cancelled":
        return f"Reopen the issue and add {label} again to restart."
    if word == "Blocked: configuration error":
        return "Fix the configuration on the default branch; Stoneforge re-reads it on push."
    if word in BLOCKED:
        return "Stoneforge picks the task up again as soon as the dependencies are fixed."
    if word == "Queued" and view.held_budget is not None:
        return (
            "Nothing to do: it starts when the budget resets at midnight UTC, or raise "
            "`budget.per_day_usd` in `.github/stoneforge.yml`."
        )
    if word == "Queued" and view.held_limits:
        return "Nothing to do: it starts on its own after that."
    if word in ("Running", "Waiting on blockers", "Queued"):
        return f"Nothing to do. Remove {label} to stop."
    reason = view.task.reason
    if word == "In review" and isinstance(reason, AwaitingReview) and not reason.on_head:
        return (
            "Re-review the pull request: Stoneforge merges it once the reviewer approves (or "
            "the review is dismissed) and checks pass."
        )
    if word == "In review":
        return (
            "Review the pull request. Stoneforge merges it when checks pass and its "
            "blockers have merged."
        )
    return "Nothing to do."


def _code_block(text: str) -> str:
    """A fenced block with the tail of ``text``, fenced longer than any backtick run in it."""
    text = text.strip("\n")
    if len(text) > _DETAIL_MAX:
        text = "…" + text[-_DETAIL_MAX:]
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _plural(count: int, noun: str) -> str:
    return f"its {noun}" if count == 1 else f"its {count} {noun}s"


def _is_are(count: int) -> str:
    return "is" if count == 1 else "are"
