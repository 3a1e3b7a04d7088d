"""When a waiting pull request is told what it waits for: once per wait, after the timeout."""

from __future__ import annotations

from bot.core.lifecycle import AwaitingReview, Conflicted
from bot.core.liveness import WAIT_MARKER, Waiting, follow_wait, wait_key, wait_notice
from bot.core.model import IssueRef
from bot.core.steward import StewardAction, WaitFor

REF = IssueRef("octo/app", 1)
HOUR = 3600.0


def checks(name: str = "ci", reason: str = "waiting for required check 'ci'") -> StewardAction:
    return StewardAction("wait", REF, 5, "abc", reason, wait=WaitFor.CHECKS, check=name)


def test_a_wait_is_told_once_after_the_timeout() -> None:
    held, tell = follow_wait(checks(), None, now=0.0, timeout_s=HOUR)
    assert (held, tell) == (Waiting("checks:ci", 0.0), False)
    held, tell = follow_wait(checks(), held, now=HOUR - 1, timeout_s=HOUR)
    assert not tell
    held, tell = follow_wait(checks(), held, now=HOUR, timeout_s=HOUR)
    assert (held, tell) == (Waiting("checks:ci", 0.0, told=True), True)
    for later in (HOUR + 1, 10 * HOUR):  # later passes: never again
        held, tell = follow_wait(checks(), held, now=later, timeout_s=HOUR)
        assert (held, tell) == (Waiting("checks:ci", 0.0, told=True), False)


def test_waiting_for_something_else_starts_a_new_wait_told_again() -> None:
    told = Waiting("checks:ci", 0.0, told=True)
    held, tell = follow_wait(checks("lint"), told, now=2 * HOUR, timeout_s=HOUR)
    assert (held, tell) == (Waiting("checks:lint", 2 * HOUR), False)
    held, tell = follow_wait(checks("lint"), held, now=3 * HOUR, timeout_s=HOUR)
    assert tell


def test_words_that_change_while_waiting_for_the_same_thing_keep_the_clock() -> None:
    ahead = [
        StewardAction("wait", REF, 5, "abc", f"queued behind #{n}", wait=WaitFor.MERGE_AHEAD)
        for n in (7, 8)
    ]
    held, _ = follow_wait(ahead[0], None, now=0.0, timeout_s=HOUR)
    held, tell = follow_wait(ahead[1], held, now=HOUR, timeout_s=HOUR)
    assert tell
    assert held == Waiting("merge_ahead", 0.0, told=True)


def test_any_other_action_ends_the_wait() -> None:
    told = Waiting("checks:ci", 0.0, told=True)
    update = StewardAction("update_branch", REF, 5, "abc", "behind main")
    assert follow_wait(update, told, now=HOUR, timeout_s=HOUR) == (None, False)
    held, tell = follow_wait(checks(), None, now=2 * HOUR, timeout_s=HOUR)
    assert (held, tell) == (Waiting("checks:ci", 2 * HOUR), False)


def test_keys_name_the_blockers_and_the_reviewers() -> None:
    a, b = IssueRef("octo/app", 2), IssueRef("octo/lib", 3)
    blocked = StewardAction("wait", REF, 5, "abc", "", wait=WaitFor.BLOCKERS, blockers=(b, a))
    assert wait_key(blocked) == "blockers:octo/app#2,octo/lib#3"
    review = StewardAction("await_review", REF, 5, "abc", "", why=AwaitingReview(("Bob", "al")))
    assert wait_key(review) == "review:al,bob"
    redo = StewardAction("redispatch", REF, 5, "abc", "", why=Conflicted(5, "main"))
    assert wait_key(redo) is None


def test_the_notice_says_what_it_waits_for_and_mentions_the_labeler() -> None:
    body = wait_notice(checks(), 2 * HOUR + 59, key="checks:ci", labeler="alice")
    assert body.startswith(f"{WAIT_MARKER} checks:ci -->\n")
    assert "@alice: this pull request has waited 2 h for required check `ci` to report." in body
    assert "The steward's state: waiting for required check 'ci'." in body
    review = StewardAction("await_review", REF, 5, "abc", "", why=AwaitingReview(("bob",)))
    body = wait_notice(review, 90 * 60, key="review:bob", labeler=None)
    assert "This pull request has waited 90 min for @bob to review it again" in body
