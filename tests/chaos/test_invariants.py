"""The chaos suite's invariant checkers (``tests.harness.invariants``), each on a good record and
on a hand-made bad one: a checker that cannot fail proves nothing."""

from __future__ import annotations

from typing import Any

from tests.harness.invariants import (
    Commit,
    HubRecord,
    double_merges,
    duplicate_pulls,
    out_of_order_merges,
    red_merges,
    unmerged,
    violations,
)

BLOCKERS = {1: (), 2: (1,), 3: ()}  # issue 2 is blocked by issue 1


def opened(pr: int) -> dict[str, Any]:
    return {"type": "pr_opened", "pr": pr, "head": f"stoneforge/{pr}", "base": "main"}


def check(sha: str, conclusion: str, name: str = "ci") -> dict[str, Any]:
    return {"type": "check_completed", "sha": sha, "name": name, "conclusion": conclusion}


def merge(pr: int, head: str, merge_sha: str, ci: str = "success") -> dict[str, Any]:
    return {"type": "merge", "pr": pr, "base": "main", "head_sha": head, "merge_sha": merge_sha,
            "checks": {"ci": ci}}  # fmt: skip


def good_events() -> list[dict[str, Any]]:
    """Issues 1, 2, 3 through pull requests 11, 12, 13; 12 merged after 11; 13 flaked once."""
    return [
        opened(11), opened(12), opened(13),
        check("h11", "success"), merge(11, "h11", "m11"),
        check("h12", "success"), merge(12, "h12", "m12"),
        check("h13", "failure"), check("h13", "success"), merge(13, "h13", "m13"),
    ]  # fmt: skip


def record(
    events: list[dict[str, Any]] | None = None,
    closes: dict[int, int] | None = None,
    history: list[tuple[str, str]] | None = None,
) -> HubRecord:
    commits = history or [("root", "initial"), ("m11", "Task 1 (#11)"), ("m12", "Task 2 (#12)"),
                          ("m13", "Task 3 (#13)")]  # fmt: skip
    return HubRecord(
        events=tuple(good_events() if events is None else events),
        closes=closes or {11: 1, 12: 2, 13: 3},
        history=tuple(Commit(sha, subject) for sha, subject in commits),
        required=frozenset({"ci"}),
    )


def test_a_good_record_has_no_violations() -> None:
    assert violations(record(), BLOCKERS) == []


def test_two_pull_requests_for_one_issue() -> None:
    bad = record([*good_events(), opened(14)], closes={11: 1, 12: 2, 13: 3, 14: 1})
    assert duplicate_pulls(bad) == ["issue #1 has 2 pull requests: [11, 14]"]


def test_a_double_merge() -> None:
    # The same issue's work landed twice: through a second pull request, cited twice on main.
    events = [*good_events(), opened(14), check("h14", "success"), merge(14, "h14", "m14")]
    history = [("root", "initial"), ("m11", "Task 1 (#11)"), ("m12", "Task 2 (#12)"),
               ("m13", "Task 3 (#13)"), ("m14", "Again (#14)"), ("x", "Redo (#11)")]  # fmt: skip
    bad = record(events, closes={11: 1, 12: 2, 13: 3, 14: 1}, history=history)
    assert double_merges(bad) == ["issue #1 merged through [11, 14]",
                                  "2 commits on main cite pull request #11"]  # fmt: skip
    twice = record([*good_events(), merge(11, "h11", "m11")])
    assert double_merges(twice) == ["pull request #11 merged 2 times"]
    elsewhere = record([*good_events()[:-1], merge(13, "h13", "lost")])
    assert double_merges(elsewhere) == ["merge of #13 (lost) is not on main"]


def test_a_merge_before_its_blocker() -> None:
    events = good_events()
    early = [*events[:3], check("h12", "success"), merge(12, "h12", "m12"),
             check("h11", "success"), merge(11, "h11", "m11"), *events[7:]]  # fmt: skip
    assert out_of_order_merges(record(early), BLOCKERS) == ["#2 merged before its blocker #1"]
    never = [e for e in events if not (e["type"] == "merge" and e["pr"] == 11)]
    assert out_of_order_merges(record(never), BLOCKERS) == ["#2 merged before its blocker #1"]
    history = [("root", "initial"), ("m12", "Task 2 (#12)"), ("m11", "Task 1 (#11)"),
               ("m13", "Task 3 (#13)")]  # fmt: skip
    assert out_of_order_merges(record(history=history), BLOCKERS) == [
        "#2 is on main before its blocker #1"
    ]


def test_a_merge_with_a_red_required_check() -> None:
    events = good_events()
    red = [*events[:7], check("h13", "failure"), merge(13, "h13", "m13", ci="failure")]
    assert red_merges(record(red)) == ["#13 merged with ci failure"]
    # fakehub's snapshot in the merge event disagreeing with the log counts too.
    said_red = [*events[:9], merge(13, "h13", "m13", ci="failure")]
    assert red_merges(record(said_red)) == ["#13 merged with ci success (its merge says failure)"]
    unchecked = [*events[:3], merge(11, "h11", "m11")]
    assert red_merges(record(unchecked)) == ["#11 merged with ci missing (its merge says success)"]


def test_an_issue_that_never_merged() -> None:
    events = [e for e in good_events() if not (e["type"] == "merge" and e["pr"] == 13)]
    assert unmerged(record(events), BLOCKERS) == ["#3 never merged"]
