"""The task lifecycle: which state changes are allowed, each with a typed reason.

The states (``bot.core.model.TaskState``) and the README's diagram:

1. queued -> running: a runner claimed it (no reason)
2. running -> in_review: its pull request was opened (no reason)
3. running -> queued: ``LeaseExpired``, ``RateLimited(agent, until)``, ``HandedOff(reason)``,
   ``DispatchRetry(error)`` (GitHub did not start the Actions run this time), or no reason
   (the job could not be built and the claim was given back)
4. running -> failed / in_review -> failed / queued -> failed: ``Failed(reason, detail)``
5. in_review -> queued: ``ChangesRequested(reviewer, review_id)`` (same branch, the review as
   feedback), ``Rebasing(pr, base, head)`` (a rebase job, no agent: the branch onto the
   current base) or ``Conflicted(pr, base)`` (again from a fresh base); running -> queued:
   ``Conflicted`` too (the rebase job met conflicts, or two resolutions failed), and
   ``Resolving(pr, base, head, files, round)`` (a resolve_conflicts job: an agent resolves the
   conflicts the rebase met); in_review -> queued: ``Reviewing(pr, head, round)`` (a review
   job: the review agent reviews ``head``), and running -> queued with it again (the review
   job was rate limited, or its runner shut down)
6. in_review -> in_review: ``AwaitingReview(reviewers, on_head)``, or no reason (waiting
   cleared); running -> in_review: ``BranchHeld(pr, head)`` (a rebase job found commits the
   App did not make, or the branch moved: it is left to its people)
7. in_review -> merged: no reason
8. queued / running -> cancelled: ``Cancelled(cause)``; queued / running / in_review ->
   cancelled: ``CancelledBy(by)``, a writer's ``/stoneforge cancel``
9. failed / cancelled -> queued: ``Restarted(by, via)``: a maintainer put the trigger label
   back (``via="label"``) or commented ``/stoneforge retry`` (``via="command"``)

``transition`` checks a change against these rules and returns the task fields to store: the
state, the reason, and ``detail``, the reason in words (``bot.core.render.describe_reason``)
for whoever reads the task table. The shell acts on the reason's type and data only
(``fresh_base``, ``isinstance``), never on its wording.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, Literal

from bot.core.model import TaskState


class CancelCause(StrEnum):
    UNTRIGGERED = "untriggered"  # the label was removed or the issue closed
    UNINSTALLED = "uninstalled"  # the App left the repository


@dataclass(frozen=True)
class Restarted:
    """A maintainer put the trigger label back on a failed or cancelled task, or commented
    ``/stoneforge retry`` on it."""

    by: str | None = None
    via: Literal["label", "command"] = "label"
    kind: Literal["restarted"] = "restarted"


@dataclass(frozen=True)
class Conflicted:
    """Its pull request conflicts with the base: an agent runs again from a fresh base."""

    pr: int
    base: str
    kind: Literal["conflicted"] = "conflicted"


@dataclass(frozen=True)
class Rebasing:
    """Its pull request conflicts with the base: a rebase job (git, no agent) replays the
    branch onto the current base, pushing against ``head`` (the head the steward saw)."""

    pr: int
    base: str
    head: str
    kind: Literal["rebasing"] = "rebasing"


@dataclass(frozen=True)
class Resolving:
    """A rebase met conflicts in ``files``: a resolve_conflicts job has an agent resolve them
    mid-rebase, pushing against ``head``; ``round`` counts the task's resolutions (1, 2)."""

    pr: int
    base: str
    head: str
    files: tuple[str, ...] = ()
    round: int = 1
    kind: Literal["resolving"] = "resolving"


@dataclass(frozen=True)
class Reviewing:
    """A review job: the review agent (``review`` in the configuration) reviews ``head`` of
    pull request ``pr``; ``round`` counts its reviews that may request changes (1, 2, ...)."""

    pr: int
    head: str
    round: int = 1
    kind: Literal["reviewing"] = "reviewing"


@dataclass(frozen=True)
class BranchHeld:
    """A rebase job found commits on the branch the App did not make, or the branch moved
    from ``head``: the steward never rewrites it and waits for its people."""

    pr: int
    head: str
    why: str = ""
    kind: Literal["branch_held"] = "branch_held"


@dataclass(frozen=True)
class LeaseExpired:
    """The runner holding it stopped heartbeating."""

    kind: Literal["lease_expired"] = "lease_expired"


@dataclass(frozen=True)
class ChangesRequested:
    """A writer's review requests changes: the agent revises the same pull request."""

    reviewer: str
    review_id: int
    kind: Literal["changes_requested"] = "changes_requested"


@dataclass(frozen=True)
class ChecksFailed:
    """Required checks stayed red on ``head`` after their re-run: the agent fixes the same
    pull request (round ``round`` of ``steward.fix_attempts``), given ``failures``, each
    failing check's name, conclusion and output (``bot.core.steward.failure_text``)."""

    pr: int
    head: str
    round: int
    checks: tuple[str, ...]
    failures: tuple[str, ...] = ()
    kind: Literal["checks_failed"] = "checks_failed"


@dataclass(frozen=True)
class AwaitingReview:
    """The agent revised it; the reviewers' "changes requested" still stands."""

    reviewers: tuple[str, ...]
    on_head: bool = False  # requested on the current head (not yet revised)
    kind: Literal["awaiting_review"] = "awaiting_review"


@dataclass(frozen=True)
class RateLimited:
    agent: str
    until: float
    kind: Literal["rate_limited"] = "rate_limited"


@dataclass(frozen=True)
class HandedOff:
    reason: str  # the runner's: max_turns, budget, stalled, ...
    kind: Literal["handed_off"] = "handed_off"


@dataclass(frozen=True)
class DispatchRetry:
    """GitHub answered a workflow dispatch with a transient error: the task waits a minute."""

    error: str
    kind: Literal["dispatch_retry"] = "dispatch_retry"


@dataclass(frozen=True)
class Failed:
    reason: str
    pr: int | None = None  # the steward's failures are about a pull request
    kind: Literal["failed"] = "failed"


@dataclass(frozen=True)
class Cancelled:
    cause: CancelCause
    kind: Literal["cancelled"] = "cancelled"


@dataclass(frozen=True)
class CancelledBy:
    """A writer commented ``/stoneforge cancel`` on the task."""

    by: str
    kind: Literal["cancelled_by"] = "cancelled_by"


Reason = (
    Restarted
    | Conflicted
    | Rebasing
    | Resolving
    | Reviewing
    | BranchHeld
    | LeaseExpired
    | ChangesRequested
    | ChecksFailed
    | AwaitingReview
    | RateLimited
    | HandedOff
    | DispatchRetry
    | Failed
    | Cancelled
    | CancelledBy
)

_KINDS: dict[str, type[Reason]] = {
    "restarted": Restarted,
    "conflicted": Conflicted,
    "rebasing": Rebasing,
    "resolving": Resolving,
    "reviewing": Reviewing,
    "branch_held": BranchHeld,
    "lease_expired": LeaseExpired,
    "changes_requested": ChangesRequested,
    "checks_failed": ChecksFailed,
    "awaiting_review": AwaitingReview,
    "rate_limited": RateLimited,
    "handed_off": HandedOff,
    "dispatch_retry": DispatchRetry,
    "failed": Failed,
    "cancelled": Cancelled,
    "cancelled_by": CancelledBy,
}

Q, R, V = TaskState.QUEUED, TaskState.RUNNING, TaskState.IN_REVIEW
M, F, C = TaskState.MERGED, TaskState.FAILED, TaskState.CANCELLED

#: (from, to) -> the reasons that allow it (``None``: the change needs no reason).
ALLOWED: dict[tuple[TaskState, TaskState], tuple[type[Reason] | None, ...]] = {
    (Q, R): (None,),
    (R, V): (None, BranchHeld),
    (R, Q): (
        LeaseExpired,
        RateLimited,
        HandedOff,
        DispatchRetry,
        Conflicted,
        Resolving,
        Reviewing,
        None,
    ),
    (R, F): (Failed,),
    (V, F): (Failed,),
    (Q, F): (Failed,),
    (V, Q): (ChangesRequested, ChecksFailed, Conflicted, Rebasing, Reviewing),
    (V, V): (AwaitingReview, None),
    (V, M): (None,),
    (Q, C): (Cancelled, CancelledBy),
    (R, C): (Cancelled, CancelledBy),
    (V, C): (CancelledBy,),
    (F, Q): (Restarted,),
    (C, Q): (Restarted,),
}


class IllegalTransition(ValueError):
    """A state change the lifecycle does not allow (a bug in the caller, not in the input)."""


def fresh_base(reason: Reason | None) -> bool:
    """Whether the next job starts from the base rather than the task's pushed branch."""
    return isinstance(reason, Restarted | Conflicted)


def check(current: TaskState, to: TaskState, reason: Reason | None) -> None:
    """Raise ``IllegalTransition`` unless ``current -> to`` is allowed with ``reason``."""
    allowed = ALLOWED.get((current, to))
    if allowed is None:
        raise IllegalTransition(f"{current.value} -> {to.value} is not a task transition")
    if (type(reason) if reason is not None else None) not in allowed:
        name = type(reason).__name__ if reason is not None else "no reason"
        raise IllegalTransition(f"{current.value} -> {to.value} does not happen for {name}")


def transition(
    current: TaskState, to: TaskState, reason: Reason | None, detail: str | None
) -> dict[str, Any]:
    """The task fields for ``current -> to`` with ``reason`` (``detail``: its words)."""
    check(current, to, reason)
    return {"state": to, "reason": reason, "detail": detail}


def reason_to_json(reason: Reason | None) -> str | None:
    """How a reason is kept in the store: JSON with its ``kind``."""
    return None if reason is None else json.dumps(asdict(reason), sort_keys=True)


def reason_from_json(text: str | None) -> Reason | None:
    """The stored reason, or ``None`` for none, or for one this version does not know."""
    if not text:
        return None
    try:
        data = json.loads(text)
        cls = _KINDS[data["kind"]]
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if cls is AwaitingReview:
            values["reviewers"] = tuple(values.get("reviewers", ()))
        if cls is ChecksFailed:
            values["checks"] = tuple(values.get("checks", ()))
            values["failures"] = tuple(values.get("failures", ()))
        if cls is Resolving:
            values["files"] = tuple(values.get("files", ()))
        if cls is Cancelled:
            values["cause"] = CancelCause(values["cause"])
        return cls(**values)
    except (ValueError, KeyError, TypeError):
        return None
