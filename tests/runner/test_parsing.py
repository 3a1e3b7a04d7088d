"""The classification rules every adapter's parser shares (runner.agents.parsing), in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.agents.base import Outcome
from runner.agents.parsing import (
    Signals,
    StreamParser,
    as_int,
    as_number,
    classify,
    json_object,
)

EVERYTHING = Signals(
    clean_final=True,
    final_text="done",
    resume_failed=True,
    rate_limited=True,
    auth=True,
    context_overflow=True,
    near_full=True,
    cap="max_turns",
)


def test_a_declared_outcome_wins_over_every_rule_but_a_kill() -> None:
    declared = Signals(**{**EVERYTHING.__dict__, "declared": (Outcome.FAILED, "script_error")})
    assert classify(declared, None) == (Outcome.FAILED, "script_error")
    assert classify(declared, "stalled") == (Outcome.HANDOFF_NEEDED, "context")
    # Declared, an empty answer still completes: the agent said so.
    quiet = Signals(final_text="", declared=(Outcome.COMPLETED, "success"))
    assert classify(quiet, None) == (Outcome.COMPLETED, "success")


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ((), (Outcome.FAILED, "resume_failed")),
        (("resume_failed",), (Outcome.RATE_LIMITED, "quota")),
        (("resume_failed", "rate_limited"), (Outcome.FAILED, "auth")),
        (("resume_failed", "rate_limited", "auth"), (Outcome.HANDOFF_NEEDED, "prompt_too_long")),
        (
            ("resume_failed", "rate_limited", "auth", "context_overflow"),
            (Outcome.HANDOFF_NEEDED, "max_turns"),
        ),
        (
            ("resume_failed", "rate_limited", "auth", "context_overflow", "cap"),
            (Outcome.COMPLETED, "success"),
        ),
    ],
)
def test_the_first_matching_rule_wins(drop: tuple[str, ...], expected: tuple[Outcome, str]) -> None:
    falsy = {"cap": None}
    signals = Signals(**{**EVERYTHING.__dict__, **{k: falsy.get(k, False) for k in drop}})
    assert classify(signals, None) == expected


def test_a_kill_wins_over_everything_and_a_full_context_makes_it_a_handoff() -> None:
    assert classify(EVERYTHING, "timeout") == (Outcome.HANDOFF_NEEDED, "context")
    assert classify(EVERYTHING, "cancelled") == (Outcome.FAILED, "cancelled")
    assert classify(Signals(clean_final=True, final_text="x"), "stalled") == (
        Outcome.FAILED,
        "stalled",
    )


def test_a_clean_end_without_an_answer_is_empty_and_nothing_at_all_is_a_crash() -> None:
    assert classify(Signals(clean_final=True, final_text="  "), None) == (
        Outcome.FAILED,
        "empty_result",
    )
    assert classify(Signals(), None) == (Outcome.FAILED, "crash")


class _Echo(StreamParser):
    """A minimal parser: a {"type": "done", "text": ...} line is the clean final event."""

    def __init__(self) -> None:
        super().__init__()
        self.text: str | None = None
        self.limited_until: datetime | None = None

    def on_message(self, msg: dict[str, object]) -> list:
        if msg.get("type") == "done":
            self.text = str(msg.get("text"))
        if msg.get("type") == "limit":
            self.limited_until = datetime(2030, 1, 1, tzinfo=UTC)
        return []

    def signals(self, exit_code: int | None) -> Signals:
        return Signals(
            clean_final=self.text is not None and exit_code == 0,
            final_text=self.text,
            rate_limited=self.limited_until is not None,
            retry_at=self.limited_until,
        )

    def detail_parts(self) -> list[str]:
        return [f"{self.garbage} unparsed lines"]


def test_the_base_feeds_json_lines_counts_garbage_and_builds_the_result() -> None:
    parser = _Echo()
    assert parser.feed_stdout("not json")[0].kind == "warning"
    parser.feed_stdout('{"type": "done", "text": "all good"}')
    parser.feed_stderr("a warning on stderr")
    result = parser.finish(0, None)
    assert (result.outcome, result.reason, result.final_text) == (
        Outcome.COMPLETED,
        "success",
        "all good",
    )
    assert result.detail is None
    failed = parser.finish(1, None)
    assert failed.reason == "crash"
    assert failed.detail == "1 unparsed lines\nstderr:\na warning on stderr"


def test_retry_at_is_kept_only_for_a_rate_limit() -> None:
    parser = _Echo()
    parser.feed_stdout('{"type": "limit"}')
    result = parser.finish(1, None)
    assert result.outcome is Outcome.RATE_LIMITED
    assert result.retry_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert parser.finish(None, "timeout").retry_at is None


def test_json_numbers_are_read_strictly() -> None:
    assert (as_int(3.9), as_int(True), as_int("4"), as_int(None)) == (3, 0, 0, 0)
    assert (as_number(2), as_number(False)) == (2.0, None)
    assert json_object("[1]") is None
    assert json_object('{"a": 1}') == {"a": 1}


class _Reporter(_Echo):
    """A parser whose CLI leaves its usage in a file: ``on_finish`` reads it before the rules."""

    def on_finish(self) -> None:
        self.usage.output_tokens = 7
        self.text = "from the report"


def test_on_finish_runs_first_and_the_exit_code_is_kept_for_the_detail() -> None:
    parser = _Reporter()
    result = parser.finish(0, None)
    assert (result.outcome, result.final_text, result.usage.output_tokens) == (
        Outcome.COMPLETED,
        "from the report",
        7,
    )
    killed = _Reporter().finish(-15, "timeout")
    assert (killed.reason, killed.usage.output_tokens) == ("timeout", 7)
    assert parser.finish(3, None).exit_code == parser.exit_code == 3
