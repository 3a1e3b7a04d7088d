"""The steward and reviews: "changes requested" sends a task back; it never merges until the
reviewer approves or the review is dismissed. Plus the job's review feedback text."""

from __future__ import annotations

from dataclasses import replace

from bot.core.lifecycle import AwaitingReview, ChangesRequested, LeaseExpired
from bot.core.model import TaskState
from bot.core.render import StatusView, render_status
from bot.core.steward import (
    Review,
    ReviewComment,
    blocking_reviews,
    plan_merges,
    review_feedback,
)
from tests.core.test_steward import plan_one, pull, review

CHANGES = "CHANGES_REQUESTED"


def rev(rid: int, author: str, state: str, body: str = "", commit: str = "sha1") -> Review:
    return Review(id=rid, author=author, state=state, body=body, commit_id=commit)


def test_a_new_changes_requested_review_sends_the_task_back_with_its_id() -> None:
    snapshot = pull(1, reviews=(rev(50, "lead", CHANGES, "Use a tuple."),))
    action = plan_one(review(1), snapshot)
    assert (action.kind, action.review_id, action.pr) == ("revise", 50, 101)
    assert action.reason == "changes requested by @lead"


def test_revise_wins_over_a_red_check_the_agent_gets_the_feedback_first() -> None:
    snapshot = pull(
        1, checks={"ci": ("completed", "failure")}, reviews=(rev(50, "lead", CHANGES, "x"),)
    )
    assert plan_one(review(1), snapshot).kind == "revise"


def test_a_review_already_handed_to_the_agent_blocks_the_merge_until_a_re_review() -> None:
    snapshot = pull(1, head_sha="sha2", reviews=(rev(50, "lead", CHANGES, "x", commit="sha1"),))
    action = plan_one(review(1, review_id=50, head_sha="sha2"), snapshot)
    assert action.kind == "await_review", "clean and green, but never merged over the review"
    assert action.reason == "waiting for a re-review from @lead"


def test_the_agent_not_having_pushed_since_the_review_is_said_so() -> None:
    snapshot = pull(1, reviews=(rev(50, "lead", CHANGES, "x", commit="sha1"),))
    action = plan_one(review(1, review_id=50), snapshot)
    assert action.kind == "await_review"
    assert action.reason == "changes requested by @lead on the current head"


def test_an_approval_after_the_change_lets_the_normal_path_merge() -> None:
    reviews = (rev(50, "lead", CHANGES, "x", commit="sha1"), rev(60, "lead", "APPROVED"))
    action = plan_one(review(1, review_id=50, head_sha="sha2"), pull(1, reviews=reviews))
    assert (action.kind, action.sha) == ("merge", "sha1")


def test_a_dismissed_review_no_longer_blocks() -> None:
    reviews = (rev(50, "lead", "DISMISSED", "x"),)
    assert plan_one(review(1, review_id=50), pull(1, reviews=reviews)).kind == "merge"
    assert plan_one(review(1), pull(1, reviews=reviews)).kind == "merge", "nothing to revise"


def test_a_comment_review_leaves_the_verdict_as_it_was() -> None:
    reviews = (rev(50, "lead", CHANGES, "x"), rev(60, "lead", "COMMENTED", "still no"))
    action = plan_one(review(1, review_id=50, head_sha="sha2"), pull(1, reviews=reviews))
    assert action.kind == "await_review"


def test_a_second_reviewer_requesting_changes_later_sends_it_back_again() -> None:
    reviews = (rev(50, "lead", CHANGES, "x"), rev(70, "alice", CHANGES, "y"))
    action = plan_one(review(1, review_id=50, head_sha="sha2"), pull(1, reviews=reviews))
    assert (action.kind, action.review_id) == ("revise", 70)
    assert action.reason == "changes requested by @alice"


def test_the_same_reviewer_asking_again_after_the_push_sends_it_back_again() -> None:
    reviews = (rev(50, "lead", CHANGES, "x"), rev(80, "Lead", CHANGES, "not yet", "sha2"))
    action = plan_one(review(1, review_id=50, head_sha="sha2"), pull(1, reviews=reviews))
    assert (action.kind, action.review_id) == ("revise", 80)


def test_a_merged_or_closed_pull_request_ignores_reviews() -> None:
    reviews = (rev(50, "lead", CHANGES, "x"),)
    assert plan_one(review(1), pull(1, merged=True, reviews=reviews)).kind == "mark_merged"
    assert plan_one(review(1), pull(1, state="closed", reviews=reviews)).kind == "fail"


def test_blockers_still_come_first_for_a_task_waiting_on_a_re_review() -> None:
    reviews = (rev(50, "lead", CHANGES, "x", commit="sha1"),)
    task = review(2, 1, review_id=50, head_sha="sha2")
    blocker = review(1)
    actions = plan_merges([blocker, task], {task.ref: pull(2, reviews=reviews)}, now=0.0)
    assert {a.task.number: a.kind for a in actions}[2] == "wait"


def test_blocking_reviews_are_each_reviewers_latest_verdict() -> None:
    reviews = [
        rev(10, "a", "APPROVED"),
        rev(20, "a", CHANGES, "no"),
        rev(30, "b", CHANGES, "no"),
        rev(40, "b", "APPROVED"),
        rev(50, "c", CHANGES, "no"),
        rev(60, "c", "COMMENTED", "hm"),
    ]
    assert [r.id for r in blocking_reviews(reviews)] == [20, 50]
    assert blocking_reviews([]) == ()


def test_feedback_is_each_blocking_review_then_its_inline_comments_in_order() -> None:
    reviews = [
        rev(20, "lead", CHANGES, "  Please use a tuple.\n\nAnd a docstring. "),
        rev(25, "lead", "COMMENTED", "unrelated"),
        rev(30, "alice", CHANGES, ""),
        rev(40, "bob", "APPROVED", "lgtm"),
    ]
    comments = [
        ReviewComment(102, 20, "lead", "app/users.py", 3, "Immutable."),
        ReviewComment(101, 20, "lead", "app/users.py", 1, "Name it USERS."),
        ReviewComment(103, 25, "lead", "app/x.py", 1, "from a comment review: left out"),
        ReviewComment(104, 30, "alice", "README.md", None, "Document it."),
        ReviewComment(105, 30, "alice", "app/y.py", 2, "   "),
    ]
    assert review_feedback(reviews, comments) == [
        "@lead: Please use a tuple.\n\nAnd a docstring.",
        "app/users.py:1: Name it USERS.",
        "app/users.py:3: Immutable.",
        "@alice requested changes.",
        "README.md: Document it.",
    ]
    assert review_feedback([rev(40, "bob", "APPROVED", "lgtm")], comments) == []


def test_the_status_comment_says_changes_were_requested_and_then_awaits_the_re_review() -> None:
    task = review(1, review_id=50, reason=ChangesRequested("lead", 50))
    queued = render_status(
        StatusView(task=replace(task, state=TaskState.QUEUED), html_base="https://github.com")
    )
    assert "- **Review:** changes requested by @lead" in queued
    waiting = render_status(
        StatusView(
            task=replace(task, reason=AwaitingReview(("lead",))),
            html_base="https://github.com",
        )
    )
    assert "**Stoneforge · In review**" in waiting
    assert "- **Review:** waiting for a re-review from @lead" in waiting
    assert "Stoneforge merges it once the reviewer approves" in waiting
    other = render_status(
        StatusView(task=replace(task, state=TaskState.QUEUED, reason=LeaseExpired()), html_base="x")
    )
    assert "**Review:**" not in other, "only the steward's review details are shown as such"
