"""The prompt's review feedback: a list the agent works through, one point per item."""

from __future__ import annotations

from pathlib import Path

from runner.prompt import build_prompt
from tests.runner.test_prompt import make_job


def test_each_review_and_inline_comment_is_one_point_and_multiline_text_stays_inside(
    tmp_path: Path,
) -> None:
    job = make_job(
        review_feedback=[
            "@lead: Please use a tuple.\n\nAnd a docstring.<!-- hidden -->",
            "app/users.py:1: Name it USERS.",
            "  ",  # nothing visible: left out
        ]
    )
    prompt = build_prompt(job, tmp_path)
    section = prompt.split("## Review feedback to address\n\n", 1)[1].split("\n\n## ", 1)[0]
    assert "address every point below" in section
    assert section.endswith(
        "- @lead: Please use a tuple.\n\n  And a docstring.\n- app/users.py:1: Name it USERS."
    )
    assert "hidden" not in prompt


def test_no_feedback_no_section(tmp_path: Path) -> None:
    assert "Review feedback" not in build_prompt(make_job(review_feedback=[]), tmp_path)
