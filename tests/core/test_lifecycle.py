"""The task lifecycle: allowed transitions, each with its typed reason, and reasons kept as JSON."""

from __future__ import annotations

import pytest

from bot.core.lifecycle import (
    ALLOWED,
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
    IllegalTransition,
    LeaseExpired,
    RateLimited,
    Reason,
    Rebasing,
    Resolving,
    Restarted,
    Reviewing,
    fresh_base,
    reason_from_json,
    reason_to_json,
    transition,
)
from bot.core.model import TaskState
from bot.core.render import describe_reason

Q, R, V = TaskState.QUEUED, TaskState.RUNNING, TaskState.IN_REVIEW
M, F, C = TaskState.MERGED, TaskState.FAILED, TaskState.CANCELLED

EVERY_REASON: list[Reason] = [
    Restarted("lead"),
    Conflicted(7, "main"),
    Rebasing(7, "main", "a" * 40),
    Resolving(7, "main", "a" * 40, ("app/api.py", "README.md"), 2),
    Reviewing(7, "a" * 40, 2),
    BranchHeld(7, "a" * 40, "a commit by @sam"),
    LeaseExpired(),
    ChangesRequested("rita", 50),
    ChecksFailed(7, "a" * 40, 1, ("ci", "lint"), ("ci: failure\nFAILED test_x",)),
    AwaitingReview(("rita", "sam"), on_head=True),
    RateLimited("claude", 1_700_000_000.0),
    HandedOff("max_turns"),
    DispatchRetry("HTTP 502"),
    Failed("required check 'ci' concluded failure", pr=7),
    Cancelled(CancelCause.UNINSTALLED),
    CancelledBy("lead"),
]


@pytest.mark.parametrize(
    ("current", "to", "reason"),
    [
        (Q, R, None),
        (R, V, None),
        (R, Q, LeaseExpired()),
        (R, Q, RateLimited("claude", 5.0)),
        (R, Q, HandedOff("stalled")),
        (R, Q, DispatchRetry("HTTP 502")),
        (R, F, Failed("tests_failed")),
        (V, Q, ChangesRequested("rita", 50)),
        (V, Q, Conflicted(7, "main")),
        (V, Q, Rebasing(7, "main", "a" * 40)),
        (R, Q, Resolving(7, "main", "a" * 40, ("README.md",))),
        (R, Q, Conflicted(7, "main")),
        (R, V, BranchHeld(7, "a" * 40)),
        (V, V, AwaitingReview(("rita",))),
        (V, M, None),
        (V, F, Failed("closed without merging", pr=7)),
        (Q, C, Cancelled(CancelCause.UNTRIGGERED)),
        (F, Q, Restarted("lead")),
        (C, Q, Restarted(None)),
        (F, Q, Restarted("lead", via="command")),
        (Q, C, CancelledBy("lead")),
        (R, C, CancelledBy("lead")),
        (V, C, CancelledBy("lead")),  # a writer may stop one in review
    ],
)
def test_allowed_transitions_return_the_fields_to_store(
    current: TaskState, to: TaskState, reason: Reason | None
) -> None:
    fields = transition(current, to, reason, "words")
    assert fields == {"state": to, "reason": reason, "detail": "words"}


@pytest.mark.parametrize(
    ("current", "to", "reason"),
    [
        (M, Q, Restarted("lead")),  # merged is final
        (Q, V, None),  # a pull request is opened by a run
        (V, Q, LeaseExpired()),  # only a running task holds a lease
        (R, Q, Restarted("lead")),  # a running task is not restarted by a label
        (F, Q, None),  # a restart says who
        (R, F, None),  # a failure says why
        (V, C, Cancelled(CancelCause.UNTRIGGERED)),  # the steward decides about pull requests
    ],
)
def test_other_transitions_are_refused(
    current: TaskState, to: TaskState, reason: Reason | None
) -> None:
    with pytest.raises(IllegalTransition):
        transition(current, to, reason, None)


def test_every_reason_allows_some_transition() -> None:
    used = {kind for kinds in ALLOWED.values() for kind in kinds if kind is not None}
    assert used == {type(r) for r in EVERY_REASON}


def test_only_a_restart_or_a_conflict_starts_again_from_the_base() -> None:
    assert [type(r) for r in EVERY_REASON if fresh_base(r)] == [Restarted, Conflicted]
    assert fresh_base(None) is False


@pytest.mark.parametrize("reason", EVERY_REASON, ids=lambda r: r.kind)
def test_reasons_round_trip_through_json(reason: Reason) -> None:
    text = reason_to_json(reason)
    assert text is not None
    assert f'"kind": "{reason.kind}"' in text
    assert reason_from_json(text) == reason


@pytest.mark.parametrize("text", [None, "", "not json", '{"kind": "unknown"}', '{"kind": 3}'])
def test_an_unknown_or_broken_stored_reason_reads_as_none(text: str | None) -> None:
    assert reason_from_json(text) is None


def test_reasons_in_words() -> None:
    words = [describe_reason(r) for r in EVERY_REASON]
    assert words == [
        "restart: relabeled",
        "restart: pull request #7 conflicts with main",
        "pull request #7 conflicts with main: rebasing it",
        "pull request #7 conflicts with main in app/api.py, README.md: resolving (round 2)",
        "pull request #7: the review agent reviews aaaaaaaaaaaa (round 2)",
        "pull request #7 not rebased: a commit by @sam",
        "lease expired",
        "changes requested by @rita",
        "pull request #7: required checks 'ci', 'lint' red; agent fix round 1",
        "changes requested by @rita, @sam on the current head",
        "claude is rate limited until 2023-11-14 22:13:20 UTC",
        "handoff: max_turns",
        "workflow dispatch failed, retrying: HTTP 502",
        "pull request #7: required check 'ci' concluded failure",
        "App uninstalled",
        "cancelled by @lead (/stoneforge cancel)",
    ]
    assert describe_reason(AwaitingReview(("rita",))) == "waiting for a re-review from @rita"
    assert describe_reason(Cancelled(CancelCause.UNTRIGGERED)) == "label removed or issue closed"
    assert (
        describe_reason(Restarted("lead", via="command")) == "restart: /stoneforge retry by @lead"
    )
