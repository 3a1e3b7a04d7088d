"""The steward on a base that requires GitHub's merge queue (``bot.core.merge_queue``), and the
code-owner gate (``bot.core.steward`` rule 11)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.codeowners import parse_codeowners
from bot.core.lifecycle import ChecksFailed, Failed
from bot.core.merge_queue import QueueNote, parse_group_ref, plan_queue
from bot.core.model import Task
from bot.core.steward import PullSnapshot, Review, StewardAction, WaitFor, check_words
from tests.core.test_steward import pull, review

SHA = "a" * 40


def queue_pull(n: int, **fields: Any) -> PullSnapshot:
    return pull(n, merge_queue=True, **fields)


def plan(
    tasks: list[Task], pulls: list[PullSnapshot], notes: dict[int, QueueNote] | None = None
) -> tuple[StewardAction, ...]:
    by_task = {t.ref: p for t, p in zip(tasks, pulls, strict=True)}
    notes_by = {t.ref: notes[t.number] for t in tasks if notes and t.number in notes}
    return plan_queue(tasks, by_task, notes_by, now=1000.0)


def test_a_ready_pull_request_is_enqueued_not_merged() -> None:
    (action,) = plan([review(1)], [queue_pull(1)])
    assert (action.kind, action.pr, action.sha) == ("enqueue", 101, "sha1")
    assert check_words(action) == (
        None,
        "adding it to GitHub's merge queue: required checks green and state clean",
    )


def test_without_the_rule_it_merges_as_before() -> None:
    (action,) = plan([review(1)], [pull(1)], {1: QueueNote("sha1", "enqueued")})
    assert action.kind == "merge"


def test_every_ready_pull_request_on_a_base_is_enqueued_the_queue_takes_many() -> None:
    actions = plan([review(1), review(2)], [queue_pull(1), queue_pull(2)])
    assert [a.kind for a in actions] == ["enqueue", "enqueue"]


def test_the_gate_still_holds_blockers_pending_checks_and_approvals() -> None:
    blocked, pending, unapproved = plan(
        [review(1), review(2, 1), review(3)],
        [
            queue_pull(1, checks={"ci": ("in_progress", None)}),
            queue_pull(2),
            queue_pull(3, required_approvals=1),
        ],
    )
    assert (blocked.kind, blocked.wait) == ("wait", WaitFor.CHECKS)
    assert (pending.kind, pending.wait) == ("wait", WaitFor.BLOCKERS)
    assert (unapproved.kind, unapproved.wait) == ("wait", WaitFor.APPROVALS)


def test_behind_is_up_to_date_enough_the_queue_tests_on_the_base() -> None:
    (action,) = plan([review(1)], [queue_pull(1, mergeable_state="behind")])
    assert action.kind == "enqueue"


def test_red_on_an_outdated_base_is_still_updated_first() -> None:
    red = {"ci": ("completed", "failure")}
    (action,) = plan([review(1)], [queue_pull(1, mergeable_state="behind", checks=red)])
    assert action.kind == "update_branch"


def test_enqueued_on_this_head_waits_and_is_never_enqueued_twice() -> None:
    note = QueueNote("sha1", "enqueued", group_sha="b" * 40)
    (action,) = plan([review(1)], [queue_pull(1)], {1: note})
    assert (action.kind, action.wait) == ("wait", WaitFor.QUEUED)
    assert action.reason == "in GitHub's merge queue (its merge group bbbbbbb is being tested)"


def test_a_note_about_an_older_head_says_nothing() -> None:
    (action,) = plan([review(1)], [queue_pull(1)], {1: QueueNote("old", "enqueued")})
    assert action.kind == "enqueue"


@pytest.mark.parametrize("reason", ["CI_FAILURE", "CI_TIMEOUT"])
def test_a_red_group_goes_back_to_the_agent_like_a_red_check(reason: str) -> None:
    note = QueueNote("sha1", "dequeued", reason, group_sha="c" * 40, red=("ci",))
    (action,) = plan([review(1)], [queue_pull(1)], {1: note})
    assert (action.kind, action.sha, action.check) == ("fix_checks", "sha1", "ci")
    assert action.why == ChecksFailed(101, "sha1", 1, ("ci",))
    assert action.reason == (
        f"the merge group ccccccc failed in GitHub's merge queue ('ci': {reason}); fix round 1 of 2"
    )


def test_a_red_group_after_the_last_fix_round_fails_never_merged() -> None:
    note = QueueNote("sha1", "dequeued", "CI_FAILURE", red=("ci",))
    (action,) = plan([review(1, fix_rounds=2)], [queue_pull(1)], {1: note})
    assert action.kind == "fail"
    assert isinstance(action.why, Failed)
    assert "after 2 fix round(s)" in action.reason


def test_removed_by_a_person_or_refused_is_not_enqueued_again_on_that_head() -> None:
    manual = QueueNote("sha1", "dequeued", "MANUAL")
    refused = QueueNote("sha2", "dequeued", "REFUSED", message="Pull Request is not mergeable")
    one, two = plan([review(1), review(2)], [queue_pull(1), queue_pull(2)], {1: manual, 2: refused})
    assert (one.kind, one.wait) == ("wait", WaitFor.DEQUEUED)
    assert one.reason == "removed from GitHub's merge queue (MANUAL); not added again on this head"
    assert "REFUSED: Pull Request is not mergeable" in two.reason


def test_a_conflict_dequeue_is_left_to_the_mergeability_rules() -> None:
    note = QueueNote("sha1", "dequeued", "MERGE_CONFLICT")
    dirty, clean = plan(
        [review(1), review(2)],
        [queue_pull(1, mergeable_state="dirty", mergeable=False), queue_pull(2)],
        {1: note, 2: QueueNote("sha2", "dequeued", "MERGE_CONFLICT")},
    )
    assert dirty.kind == "rebase"
    assert clean.kind == "enqueue", "no longer conflicting: it may go again"


def test_merged_through_the_queue_is_marked_merged() -> None:
    note = QueueNote("sha1", "enqueued")
    (action,) = plan([review(1)], [queue_pull(1, merged=True, state="closed")], {1: note})
    assert action.kind == "mark_merged"


def test_a_review_asking_for_changes_still_sends_it_back() -> None:
    asks = (Review(1, "lead", "CHANGES_REQUESTED", "no"),)
    (action,) = plan([review(1)], [queue_pull(1, reviews=asks)], {1: QueueNote("sha1", "enqueued")})
    assert action.kind == "revise"


def test_group_refs_name_the_base_pull_request_and_head() -> None:
    assert parse_group_ref(f"refs/heads/gh-readonly-queue/main/pr-12-{SHA}") == ("main", 12, SHA)
    assert parse_group_ref(f"gh-readonly-queue/release/v1/pr-3-{SHA}") == ("release/v1", 3, SHA)
    assert parse_group_ref("refs/heads/main") is None


# --- code owners (rule 11) ---------------------------------------------------------------


def test_a_changed_file_waits_for_its_code_owners_approval() -> None:
    rules = parse_codeowners("* @lead\n/api/ @alice @bob\n")
    files = ("api/x.py", "README.md")
    (waiting,) = plan([review(1)], [pull(1, code_owners=rules, files=files)])
    assert (waiting.kind, waiting.wait) == ("wait", WaitFor.CODE_OWNERS)
    assert waiting.reason == (
        "waiting for a code owner's approval: api/x.py and 1 more file(s) (@alice or @bob)"
    )
    approved = (Review(1, "Bob", "APPROVED"), Review(2, "lead", "APPROVED"))
    (ready,) = plan([review(1)], [pull(1, code_owners=rules, files=files, reviews=approved)])
    assert ready.kind == "merge"


def test_an_apps_approval_and_a_withdrawn_one_do_not_count_for_code_owners() -> None:
    rules = parse_codeowners("* @lead @reviewer-bot\n")
    reviews = (
        Review(1, "reviewer-bot", "APPROVED", author_type="Bot"),
        Review(2, "lead", "APPROVED"),
        Review(3, "lead", "DISMISSED"),
    )
    (action,) = plan([review(1)], [pull(1, code_owners=rules, files=("a",), reviews=reviews)])
    assert action.wait is WaitFor.CODE_OWNERS


def test_code_owners_not_required_means_no_wait() -> None:
    (action,) = plan([review(1)], [pull(1, files=("a",))])
    assert action.kind == "merge"
