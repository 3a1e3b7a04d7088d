"""The review agent's rules in the steward (``bot.core.agent_review``): a review job once per
head, its "changes requested" through the revision loop up to ``max_rounds``, then a person;
``required`` decides whether a head the agent could not review may merge; a person's review
always outranks the agent's, and the App's approval never counts as a person's."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from bot.core.admission import agent_for
from bot.core.agent_review import (
    ReviewPolicy,
    agent_verdict,
    as_verdict,
    decide_agent_review,
    verdict_marker,
)
from bot.core.config import RepoConfig
from bot.core.lifecycle import ChangesRequested, Failed, Reviewing
from bot.core.model import Task
from bot.core.steward import PullSnapshot, Review, StewardAction, WaitFor, check_words, plan_merges
from tests.core.test_steward import pull, review

APP = "stoneforge[bot]"


def app(rid: int, state: str, body: str = "", commit: str = "sha1") -> Review:
    return Review(rid, APP, state, body, commit_id=commit, author_type="Bot")


def person(rid: int, state: str, commit: str = "sha1", who: str = "lead") -> Review:
    return Review(rid, who, state, "", commit_id=commit)


def plan(task: Task, snapshot: PullSnapshot, **policy: Any) -> StewardAction:
    gate = functools.partial(decide_agent_review, policy=ReviewPolicy(**policy))
    (action,) = plan_merges([task], {task.ref: snapshot}, now=1000.0, gate=gate)
    return action


def test_a_green_head_never_reviewed_gets_a_review_job_in_round_one() -> None:
    action = plan(review(1), pull(1))
    assert (action.kind, action.sha, action.why) == ("review", "sha1", Reviewing(101, "sha1", 1))
    assert check_words(action) == (None, "reviewing (round 1 of 2)")


def test_no_review_configured_merges_as_before() -> None:
    (action,) = plan_merges([review(1)], {review(1).ref: pull(1)}, now=1000.0)
    assert action.kind == "merge"


@pytest.mark.parametrize(
    "snapshot",
    [
        pull(1, checks={"ci": ("in_progress", None)}),
        pull(1, mergeable_state="behind"),
        pull(1, mergeable_state="dirty", mergeable=False),
        pull(1, reviews=(person(5, "CHANGES_REQUESTED"),)),
    ],
    ids=["checks-pending", "behind", "dirty", "person-requests-changes"],
)
def test_only_a_head_that_could_otherwise_merge_is_reviewed(snapshot: PullSnapshot) -> None:
    assert plan(review(1), snapshot).kind != "review"


def test_the_agents_approval_of_the_head_lets_it_merge() -> None:
    action = plan(review(1, agent_review_head="sha1"), pull(1, agent_review=app(7, "APPROVED")))
    assert (action.kind, action.sha) == ("merge", "sha1")


def test_a_head_already_sent_for_review_is_never_reviewed_twice() -> None:
    # the job failed (or its review was dismissed): not required, it merges without it ...
    task = review(1, agent_review_head="sha1")
    assert plan(task, pull(1)).kind == "merge"
    # ... required: it waits for a person's approval (or a new head)
    action = plan(task, pull(1), required=True)
    assert (action.kind, action.wait) == ("wait", WaitFor.AGENT_REVIEW)
    assert "waiting for a person's approval" in action.reason
    approved = pull(1, reviews=(person(9, "APPROVED"),))
    assert plan(task, approved, required=True).kind == "merge"


def test_an_approval_of_an_earlier_head_does_not_count_a_new_head_is_reviewed() -> None:
    snapshot = pull(1, head_sha="sha2", agent_review=app(7, "APPROVED", commit="sha1"))
    action = plan(review(1, head_sha="sha2", agent_review_head="sha1"), snapshot, required=True)
    assert (action.kind, action.sha) == ("review", "sha2")


def test_changes_requested_go_back_to_the_agent_and_count_a_round() -> None:
    verdict = app(7, "CHANGES_REQUESTED", "Handle the empty list.")
    action = plan(review(1, agent_review_head="sha1"), pull(1, agent_review=verdict))
    assert (action.kind, action.review_id) == ("revise", 7)
    assert action.why == ChangesRequested(APP, 7)
    assert action.reason == "changes requested by the review agent (round 1 of 2)"


def test_the_revised_head_is_reviewed_in_the_next_round() -> None:
    task = review(1, head_sha="sha2", agent_review_head="sha1", agent_review_rounds=1, review_id=7)
    snapshot = pull(1, head_sha="sha2", agent_review=app(7, "CHANGES_REQUESTED", commit="sha1"))
    action = plan(task, snapshot)
    assert (action.kind, action.why) == ("review", Reviewing(101, "sha2", 2))
    assert check_words(action)[1] == "reviewing (round 2 of 2)"


def test_changes_already_handed_to_the_agent_wait_for_its_revision() -> None:
    task = review(1, agent_review_head="sha1", agent_review_rounds=1, review_id=7)
    action = plan(task, pull(1, agent_review=app(7, "CHANGES_REQUESTED")))
    assert (action.kind, action.wait) == ("wait", WaitFor.AGENT_REVIEW)


def test_changes_requested_in_the_last_round_fail_the_task_quoting_the_review() -> None:
    task = review(1, agent_review_head="sha1", agent_review_rounds=1)
    verdict = app(9, "CHANGES_REQUESTED", "Still no test.\n\nAdd one.")
    action = plan(task, pull(1, agent_review=verdict))
    assert action.kind == "fail"
    assert isinstance(action.why, Failed)
    assert action.reason.startswith("the review agent requested changes in round 2 of 2:")
    assert "> Still no test.\n>\n> Add one." in action.reason
    assert plan(task, pull(1, agent_review=verdict), max_rounds=3).kind == "revise"


def test_a_persons_approval_after_the_agents_change_request_lets_it_merge() -> None:
    task = review(1, agent_review_head="sha1", agent_review_rounds=1)
    snapshot = pull(
        1, agent_review=app(9, "CHANGES_REQUESTED", "no"), reviews=(person(12, "APPROVED"),)
    )
    assert plan(task, snapshot, required=True).kind == "merge"
    # an approval older than the agent's verdict does not outrank it
    older = pull(
        1, agent_review=app(9, "CHANGES_REQUESTED", "no"), reviews=(person(3, "APPROVED"),)
    )
    assert plan(task, older, required=True).kind == "fail"


def test_a_persons_change_request_wins_over_the_agents_approval() -> None:
    snapshot = pull(1, agent_review=app(7, "APPROVED"), reviews=(person(8, "CHANGES_REQUESTED"),))
    action = plan(review(1, agent_review_head="sha1"), snapshot)
    assert (action.kind, action.review_id) == ("revise", 8)
    handed = plan(review(1, agent_review_head="sha1", review_id=8), snapshot)
    assert handed.kind == "await_review"


def test_the_apps_approval_never_counts_toward_required_approvals() -> None:
    snapshot = pull(1, agent_review=app(7, "APPROVED"), required_approvals=1)
    action = plan(review(1, agent_review_head="sha1"), snapshot)
    assert (action.kind, action.wait) == ("wait", WaitFor.APPROVALS)
    assert "0 of 1" in action.reason
    both = pull(1, agent_review=app(7, "APPROVED"), required_approvals=1,
                reviews=(person(8, "APPROVED"),))  # fmt: skip
    assert plan(review(1, agent_review_head="sha1"), both).kind == "merge"


def test_a_dismissed_agent_review_is_no_verdict() -> None:
    task = review(1, agent_review_head="sha1")
    snapshot = pull(1, agent_review=app(7, "DISMISSED"))
    assert plan(task, snapshot).kind == "merge"
    assert plan(task, snapshot, required=True).kind == "wait"


def test_the_apps_comment_review_marked_with_a_verdict_is_that_verdict() -> None:
    body = verdict_marker("REQUEST_CHANGES") + "\n**The review agent requests changes**\n\nFix it."
    reviews = [
        app(3, "APPROVED", commit="sha0"),
        Review(7, APP, "COMMENTED", body, commit_id="sha1", author_type="Bot"),
        Review(8, APP, "COMMENTED", "A plain remark.", commit_id="sha1", author_type="Bot"),
        person(9, "APPROVED"),
    ]
    found = agent_verdict(reviews, APP, "sha1")
    assert found is not None
    assert (found.id, found.state) == (7, "CHANGES_REQUESTED")
    assert found.body == "**The review agent requests changes**\n\nFix it."
    assert agent_verdict(reviews, APP, "sha2") is None, "the latest verdict is on another head"
    assert agent_verdict(reviews, None, "sha1") is None
    assert as_verdict(person(9, "APPROVED")) == person(9, "APPROVED")


def test_a_review_job_goes_only_to_a_runner_that_can_run_the_review_agent() -> None:
    config = RepoConfig.model_validate(
        {
            "agent": {"name": "claude"},
            "review": {"agent": "codex"},
            "fallback_agent": {"name": "gemini"},
        }
    )
    reviewing = review(1, agent="claude", reason=Reviewing(101, "sha1", 1))
    assert agent_for(reviewing, config, frozenset(), 0.0) == "codex"
    assert agent_for(reviewing, config, frozenset({"claude"}), 0.0) == "codex"
    assert agent_for(reviewing, config, frozenset({"codex"}), 0.0) is None, "no fallback"
    assert agent_for(review(1, agent="claude"), config, frozenset(), 0.0) == "claude"
