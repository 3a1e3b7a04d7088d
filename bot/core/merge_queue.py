"""The steward on a base that requires GitHub's merge queue, as a layer over ``plan_merges``.

Where the base's rules include ``merge_queue`` (``PullSnapshot.merge_queue``), GitHub refuses
the merge endpoint (405); the pull request is enqueued instead, and GitHub tests it as a merge
group on top of the base (and of the entries ahead of it) and lands it. ``plan_queue`` runs the
same gate as ``plan_merges`` (blockers merged, required checks green on the head, approvals,
code owners, mergeable) and then, for a pull request on such a base, in order:

1. behind its base (and not red) counts as up to date: the queue tests it on the current base,
   so its branch is never updated just to catch up
2. merged, closed, or sent back to an agent (a review, a red check on its head, a rebase) ->
   as ``plan_merges`` says
3. enqueued on its current head (``QueueNote``) -> ``wait`` (``QUEUED``): never enqueued twice
4. dequeued on its current head because its merge group's required checks failed (or timed
   out) -> like a red check on the head: ``fix_checks`` while fix rounds remain, with the
   group's red checks (``QueueNote.red``, read by the caller), then ``fail``. Never merged red.
5. dequeued on its current head for another reason (a person removed it, GitHub refused to
   enqueue it) -> ``wait`` (``DEQUEUED``), not enqueued again on that head; a conflict
   (``MERGE_CONFLICT``) is left to the mergeability rules (a rebase), and it may go again
6. ready to merge (``merge``, or ready and queued behind another merge on its base: the queue
   takes any number) -> ``enqueue`` guarded by the head SHA

The notes are the caller's memory of what GitHub said: the enqueue it made, the
``merge_group`` and ``pull_request.dequeued`` webhooks since. A note about an older head says
nothing about the current one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.lifecycle import ChecksFailed, Failed
from bot.core.model import IssueRef, Task
from bot.core.steward import (
    FIX_ATTEMPTS,
    Gate,
    PullSnapshot,
    RerunKey,
    StewardAction,
    WaitFor,
    check_verdict,
    plan_merges,
)

#: ``pull_request.dequeued`` reasons that mean the merge group went red
RED_REASONS = frozenset({"CI_FAILURE", "CI_TIMEOUT"})
#: reasons after which the pull request may simply go again (mergeability rules decide)
AGAIN_REASONS = frozenset({"MERGE", "MERGE_CONFLICT", "ALREADY_MERGED", "QUEUE_CLEARED"})
_GROUP_REF = re.compile(r"^(?:refs/heads/)?gh-readonly-queue/(.+)/pr-(\d+)-([0-9a-f]{40})$")
#: what ``plan_queue`` overrides: acting on the pull request as ``plan_merges`` would (update
#: its branch, merge it) or waiting on it; sending it back to an agent or failing it is kept
_OVERRIDDEN = frozenset({"merge", "update_branch", "wait"})


@dataclass(frozen=True)
class QueueNote:
    """What the bot knows of a pull request's last trip through GitHub's merge queue."""

    head_sha: str  # the pull request's head it was enqueued with
    state: Literal["enqueued", "dequeued"]
    reason: str = ""  # dequeued: GitHub's reason (CI_FAILURE, MANUAL, ...) or "REFUSED"
    group_sha: str | None = None  # the head of the merge group last built for it
    red: tuple[str, ...] = ()  # dequeued red: the required checks red on the group's head
    message: str = ""  # words from GitHub (a refused enqueue's)


def parse_group_ref(ref: str) -> tuple[str, int, str] | None:
    """``(base, pull request number, head sha)`` of a merge group's branch
    (``gh-readonly-queue/{base}/pr-{n}-{sha}``, with or without ``refs/heads/``), or None."""
    found = _GROUP_REF.match(ref)
    if found is None:
        return None
    return found.group(1), int(found.group(2)), found.group(3)


def plan_queue(
    tasks: Sequence[Task],
    pulls: Mapping[IssueRef, PullSnapshot],
    notes: Mapping[IssueRef, QueueNote],
    *,
    now: float,
    pending_since: Mapping[IssueRef, float] | None = None,
    reruns: Mapping[RerunKey, int] | None = None,
    fix_attempts: Mapping[str, int] | None = None,
    gate: Gate | None = None,
) -> tuple[StewardAction, ...]:
    """``plan_merges`` with the merge queue's rules (see the module docstring); ``gate`` is
    passed on to it (the review agent's rule)."""
    seen = {ref: _up_to_date(pull) for ref, pull in pulls.items()}
    actions = plan_merges(
        tasks,
        seen,
        now=now,
        pending_since=pending_since,
        reruns=reruns,
        fix_attempts=fix_attempts,
        gate=gate,
    )
    by_ref = {task.ref: task for task in tasks}
    fixes = fix_attempts or {}
    out = []
    for action in actions:
        pull, task = seen.get(action.task), by_ref.get(action.task)
        if pull is None or task is None or not pull.merge_queue:
            out.append(action)
            continue
        note = notes.get(action.task)
        if note is not None and note.head_sha != pull.head_sha:
            note = None  # about an older head
        out.append(_queued(action, task, pull, note, fixes.get(task.repo, FIX_ATTEMPTS)))
    return tuple(out)


def _up_to_date(pull: PullSnapshot) -> PullSnapshot:
    """Rule 1: on a queue base, behind (and not red) is as good as clean."""
    if pull.merge_queue and pull.mergeable_state == "behind" and check_verdict(pull)[0] != "red":
        return dataclasses.replace(pull, mergeable_state="clean")
    return pull


def _queued(
    action: StewardAction,
    task: Task,
    pull: PullSnapshot,
    note: QueueNote | None,
    fix_attempts: int,
) -> StewardAction:
    if action.kind not in _OVERRIDDEN:
        return action  # rule 2
    ref, pr, sha = task.ref, pull.number, pull.head_sha
    ready = action.kind == "merge" or (action.kind == "wait" and action.wait is WaitFor.MERGE_AHEAD)
    if note is not None and note.state == "enqueued":  # rule 3
        words = "in GitHub's merge queue"
        if note.group_sha:
            words += f" (its merge group {note.group_sha[:7]} is being tested)"
        return StewardAction("wait", ref, pr, sha, words, wait=WaitFor.QUEUED)
    if note is not None and note.reason in RED_REASONS:  # rule 4
        return _red_group(task, pull, note, fix_attempts)
    if note is not None and note.reason not in AGAIN_REASONS:  # rule 5
        why = f": {note.message}" if note.message else ""
        return StewardAction(
            "wait",
            ref,
            pr,
            sha,
            f"removed from GitHub's merge queue ({note.reason or 'no reason given'}{why});"
            " not added again on this head",
            wait=WaitFor.DEQUEUED,
        )
    if ready:  # rule 6
        reason = action.reason if action.kind == "merge" else "required checks green"
        return StewardAction("enqueue", ref, pr, sha, reason)
    return action


def _red_group(task: Task, pull: PullSnapshot, note: QueueNote, fix_attempts: int) -> StewardAction:
    ref, pr, sha = task.ref, pull.number, pull.head_sha
    names = ", ".join(repr(n) for n in note.red) or "its required checks"
    group = f" {note.group_sha[:7]}" if note.group_sha else ""
    why = f"the merge group{group} failed in GitHub's merge queue ({names}: {note.reason})"
    if task.fix_rounds < fix_attempts:
        rnd = task.fix_rounds + 1
        return StewardAction(
            "fix_checks",
            ref,
            pr,
            sha,
            f"{why}; fix round {rnd} of {fix_attempts}",
            check=note.red[0] if note.red else None,
            why=ChecksFailed(pr, sha, rnd, note.red),
        )
    if fix_attempts:
        why = f"{why}, after {task.fix_rounds} fix round(s)"
    return StewardAction("fail", ref, pr, sha, why, why=Failed(why, pr))
