"""The status comment: snapshot tests of every state, plus the rules behind the text.

Expected comments live in ``tests/core/snapshots/<case>.md``. After an intended change of
wording, rewrite them with ``UPDATE_SNAPSHOTS=1 pytest tests/core/test_render.py`` and review
the diff.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import IssueRef, Task, TaskState
from bot.core.render import (
    STATUS_MARKER,
    StatusView,
    render_cycle,
    render_missing,
    render_status,
    status_word,
)
from bot.core.render_text import format_cost, format_duration, format_utc

SNAPSHOTS = Path(__file__).parent / "snapshots"
BASE = "https://github.com"
REPO = "octo/demo"


def ref(number: int, repo: str = REPO) -> IssueRef:
    return IssueRef(repo, number)


def make_task(**overrides: Any) -> Task:
    fields: dict[str, Any] = {"repo": REPO, "number": 7, "title": "Add the users endpoint"}
    fields.update(overrides)
    return Task(**fields)


def view(task: Task | None = None, **overrides: Any) -> StatusView:
    return StatusView(task=task or make_task(), html_base=BASE, **overrides)


CASES: dict[str, StatusView] = {
    "queued": view(queue_position=2),
    "waiting": view(
        make_task(blocked_by=(ref(3), ref(4), ref(12, "octo/api"))),
        waiting_on=(ref(4), ref(12, "octo/api")),
    ),
    "running": view(
        make_task(state=TaskState.RUNNING, attempt=2, worker="runner-a/w1", blocked_by=(ref(3),)),
    ),
    "in_review": view(
        make_task(
            state=TaskState.IN_REVIEW,
            attempt=1,
            worker="runner-a/w2",
            pr_number=12,
            head_sha="0123456789abcdef0123456789abcdef01234567",
            agent_seconds=192.4,
        ),
        cost_usd=0.4213,
    ),
    "merging": view(
        make_task(state=TaskState.IN_REVIEW, attempt=1, pr_number=12, agent_seconds=61),
        merging=True,
    ),
    "merged": view(
        make_task(state=TaskState.MERGED, attempt=1, pr_number=12, agent_seconds=7322),
        cost_usd=1.5,
    ),
    "failed": view(
        make_task(
            state=TaskState.FAILED,
            attempt=3,
            worker="runner-b/w1",
            agent_seconds=12.0,
            detail="agent_exit: exit status 1\n```\nTraceback (most recent call last):\n```",
        ),
        cost_usd=0.004,
    ),
    "cancelled": view(make_task(state=TaskState.CANCELLED, attempt=1)),
    "cycle": view(
        make_task(blocked_by=(ref(5),)),
        cycle=(ref(5), ref(6), ref(7)),
        waiting_on=(ref(5),),
    ),
    "missing": view(
        make_task(blocked_by=(ref(3), ref(99), ref(4, "someone/private"))),
        missing=(ref(99), ref(4, "someone/private")),
    ),
    "config_error": view(
        config_error="stoneforge.yml: line 3: unknown key 'max_paralel'",
        trigger_label="stoneforge",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_status_snapshot(case: str) -> None:
    rendered = render_status(CASES[case])
    path = SNAPSHOTS / f"{case}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; run with UPDATE_SNAPSHOTS=1"
    assert rendered == path.read_text(encoding="utf-8")


def test_every_snapshot_file_has_a_case() -> None:
    assert {p.stem for p in SNAPSHOTS.glob("*.md")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_comment_starts_with_marker_and_names_its_status(case: str) -> None:
    text = render_status(CASES[case])
    assert text.splitlines()[0] == STATUS_MARKER
    assert text.count(STATUS_MARKER) == 1
    assert f"**Stoneforge · {status_word(CASES[case])}**" in text.splitlines()[1]
    assert text.endswith("\n")
    assert not text.endswith("\n\n")


@pytest.mark.parametrize(
    ("case", "word"),
    [
        ("queued", "Queued"),
        ("waiting", "Waiting on blockers"),
        ("running", "Running"),
        ("in_review", "In review"),
        ("merging", "Merging"),
        ("merged", "Merged"),
        ("failed", "Failed — needs a human"),
        ("cancelled", "Cancelled"),
        ("cycle", "Blocked: dependency cycle"),
        ("missing", "Blocked: missing dependency"),
        ("config_error", "Blocked: configuration error"),
    ],
)
def test_status_word(case: str, word: str) -> None:
    assert status_word(CASES[case]) == word


def test_terminal_state_wins_over_graph_problems() -> None:
    failed = replace(CASES["cycle"], task=make_task(state=TaskState.FAILED, blocked_by=(ref(5),)))
    assert status_word(failed) == "Failed — needs a human"
    assert "Remove and re-add `agent-ready` to retry." in render_status(failed)


def test_blockers_marked_done_waiting_and_missing() -> None:
    text = render_status(CASES["missing"])
    assert "✓ [#3](https://github.com/octo/demo/issues/3)" in text
    assert "✗ [#99](https://github.com/octo/demo/issues/99)" in text
    assert "✗ [someone/private#4](https://github.com/someone/private/issues/4)" in text
    waiting = render_status(CASES["waiting"])
    assert "✓ [#3]" in waiting
    assert "⏳ [#4]" in waiting
    assert "⏳ [octo/api#12](https://github.com/octo/api/issues/12)" in waiting


def test_links_use_html_base_without_double_slash() -> None:
    local = replace(CASES["in_review"], html_base="http://127.0.0.1:8123/")
    text = render_status(local)
    assert "[#12](http://127.0.0.1:8123/octo/demo/pull/12)" in text
    assert "//octo" not in text


def test_failure_detail_is_fenced_beyond_its_own_backticks_and_truncated() -> None:
    text = render_status(CASES["failed"])
    assert "````\nagent_exit: exit status 1\n```\nTraceback" in text
    long = replace(CASES["failed"], task=make_task(state=TaskState.FAILED, detail="x" * 5000))
    block = re.search(r"```\n(.*?)\n```", render_status(long), re.DOTALL)
    assert block is not None
    assert block.group(1) == "…" + "x" * 1500


def test_worker_with_backticks_stays_inline_code() -> None:
    task = make_task(state=TaskState.RUNNING, worker="w`1")
    assert "- **Runner:** ``w`1``" in render_status(view(task))


def test_cost_falls_back_to_the_task() -> None:
    task = make_task(state=TaskState.RUNNING, agent_seconds=5, cost_usd=2.5)
    assert "- **Agent time:** 5 s · $2.50" in render_status(view(task))
    assert "$9.00" in render_status(view(task, cost_usd=9))


def test_trigger_label_named_in_next_step() -> None:
    cancelled = replace(CASES["cancelled"], trigger_label="ai")
    assert "add `ai` again" in render_status(cancelled)


def test_render_cycle_lists_members_as_links() -> None:
    text = render_cycle((ref(2), ref(9, "octo/lib")), BASE)
    assert "[#2](https://github.com/octo/demo/issues/2)" in text
    assert "[octo/lib#9](https://github.com/octo/lib/issues/9)" in text
    assert "Fix the cycle by removing one of these links" in text


def test_render_missing_names_task_and_blockers() -> None:
    text = render_missing(ref(7), (ref(99),), "http://127.0.0.1:9")
    assert text.startswith("octo/demo#7 is blocked by")
    assert "[#99](http://127.0.0.1:9/octo/demo/issues/99)" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (44.6, "45 s"), (60, "1 min 00 s"), (192.4, "3 min 12 s"), (7322, "2 h 02 min")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("usd", "text"), [(0, "$0.00"), (0.004, "< $0.01"), (0.4213, "$0.42"), (1234.5, "$1,234.50")]
)
def test_format_cost(usd: float, text: str) -> None:
    assert format_cost(usd) == text


def test_utc_times_match_the_standard_library() -> None:
    import datetime as dt

    for when in (0, 951_782_400, 1_709_164_800.9, 1_764_400_000, 4_102_444_799, 1_234_567_890):
        expected = dt.datetime.fromtimestamp(int(when), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert format_utc(when) == expected


def test_a_held_back_task_says_why_and_what_happens_next() -> None:
    task = Task("octo/app", 5, "t", state=TaskState.QUEUED)
    budget = render_status(StatusView(task=task, html_base=BASE, held_budget=(0.6, 0.5)))
    assert "held back: the repository's daily budget is spent ($0.60 of $0.50 today, UTC)" in budget
    assert "midnight UTC" in budget
    limits = (("claude", 0.0), ("codex", 86_400.0))
    limited = render_status(StatusView(task=task, html_base=BASE, held_limits=limits))
    assert (
        "held back: claude is rate limited until 1970-01-01 00:00:00 UTC and codex is rate "
        "limited until 1970-01-02 00:00:00 UTC." in limited
    )
    assert "starts on its own" in limited
