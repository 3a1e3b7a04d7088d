"""The pull request body's attempts table, and transcript links in the status comment."""

from __future__ import annotations

from bot.core.model import Task, TaskState
from bot.core.render import StatusView, render_status, render_transcript_links
from bot.core.render_pull import PULL_MARKER, AttemptRow, render_pull_body
from bot.core.render_text import TranscriptLink


def link(attempt: int, number: int) -> TranscriptLink:
    return TranscriptLink(attempt, number, f"https://bot.example/transcripts/a{attempt}t{number}")


def test_pull_body_closes_the_issue_and_tables_every_run_with_the_total() -> None:
    rows = [
        AttemptRow(1, 1, "handoff (max_turns)", "claude", 192.4, 12000, 3400, 0.12, (link(1, 1),)),
        AttemptRow(2, 2, "completed", "claude", 45, 900, 80, 0.05, (link(2, 1), link(2, 2))),
    ]
    body = render_pull_body(
        5, "Added the endpoint.", rows, total_seconds=237.4, total_cost_usd=0.17
    )
    lines = body.splitlines()
    assert lines[0] == "Closes #5"
    assert "Added the endpoint." in lines
    assert (
        "| 1 | 1 | handoff (max_turns) | `claude` | 3 min 12 s | 12,000 / 3,400 | $0.12 | "
        "[try 1](https://bot.example/transcripts/a1t1) |"
    ) in lines
    assert lines[lines.index("### Attempts") + 5].endswith(
        "[try 1](https://bot.example/transcripts/a2t1), "
        "[try 2](https://bot.example/transcripts/a2t2) |"
    )
    assert "**Total:** 3 min 57 s of agent time · $0.17" in lines
    assert PULL_MARKER in lines


def test_unknown_facts_show_a_dash_and_cells_cannot_break_the_table() -> None:
    row = AttemptRow(3, outcome="failed (exit | 2\nsee log)", agent="a|b")
    (line,) = [x for x in render_pull_body(9, "", [row]).splitlines() if x.startswith("| 3 |")]
    assert line == "| 3 | — | failed (exit \\| 2 see log) | `a\\|b` | — | — | — | — |"


def test_pull_body_without_runs_or_totals_is_just_the_closing_line_and_summary() -> None:
    body = render_pull_body(9, "  Done.  ", [])
    assert body.startswith("Closes #9\n\nDone.\n\n")
    assert "### Attempts" not in body
    assert "**Total:**" not in body


def test_status_comment_lists_transcripts_grouped_by_attempt_newest_kept() -> None:
    task = Task("octo/demo", 7, "Add it", state=TaskState.IN_REVIEW, attempt=2, pr_number=3)
    view = StatusView(task, "https://github.com", transcripts=(link(1, 1), link(1, 2), link(2, 1)))
    assert (
        "- **Transcripts:** attempt 1: [try 1](https://bot.example/transcripts/a1t1), "
        "[try 2](https://bot.example/transcripts/a1t2) · attempt 2: "
        "[try 1](https://bot.example/transcripts/a2t1)"
    ) in render_status(view)
    assert "Transcripts" not in render_status(StatusView(task, "https://github.com"))


def test_a_long_history_shows_only_the_newest_links() -> None:
    many = [link(a, t) for a in range(1, 9) for t in (1, 2)]
    text = render_transcript_links(many)
    assert text.startswith("… attempt 3: ")
    assert text.count("[try ") == 12
    assert text.endswith("[try 2](https://bot.example/transcripts/a8t2)")
