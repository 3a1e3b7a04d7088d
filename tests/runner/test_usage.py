"""Per-run usage from cumulative and per-run CLI reports (runner.usage)."""

from __future__ import annotations

import pytest

from runner.agents import get_adapter, known_agents
from runner.agents.base import Outcome, Result, Usage, resume_failed
from runner.usage import UsageLedger, reported, usage_delta


def total(inp: int, out: int, cost: float | None, **kw: int) -> Usage:
    return Usage(input_tokens=inp, output_tokens=out, cost_usd=cost, **kw)


def test_delta_of_a_new_session_is_its_total() -> None:
    run = total(10, 20, 0.5, cache_read=7, context_tokens=99)
    delta = usage_delta(None, run)
    assert delta == run
    assert delta is not run  # a copy: later changes to one never reach the other


def test_delta_subtracts_every_counter_and_the_cost() -> None:
    before = total(10, 20, 0.001, cache_read=100, cache_write=5, reasoning_tokens=3)
    after = total(30, 60, 0.003, cache_read=250, cache_write=5, reasoning_tokens=4,
                  context_tokens=1234)  # fmt: skip
    delta = usage_delta(before, after)
    assert (delta.input_tokens, delta.output_tokens) == (20, 40)
    assert (delta.cache_read, delta.cache_write, delta.reasoning_tokens) == (150, 0, 1)
    assert delta.cost_usd == pytest.approx(0.002)
    assert delta.context_tokens == 1234  # occupancy now, not a difference


def test_cost_unknown_on_either_side() -> None:
    assert usage_delta(total(1, 1, None), total(3, 3, None)).cost_usd is None
    assert usage_delta(total(1, 1, None), total(3, 3, 0.25)).cost_usd == 0.25


@pytest.mark.parametrize(
    "after",
    [total(5, 100, 0.9), total(50, 100, 0.1)],
    ids=["tokens_shrank", "cost_shrank"],
)
def test_a_total_that_shrank_started_over(after: Usage) -> None:
    assert usage_delta(total(10, 20, 0.5), after) == after


def test_ledger_charges_cumulative_sessions_by_difference() -> None:
    ledger = UsageLedger()
    first = ledger.charge("S", total(10, 20, 0.001), cumulative=True)
    second = ledger.charge("S", total(30, 60, 0.003), cumulative=True)
    other = ledger.charge("T", total(5, 5, 0.01), cumulative=True)
    assert (first.input_tokens, first.output_tokens, first.cost_usd) == (10, 20, 0.001)
    assert (second.input_tokens, second.output_tokens) == (20, 40)
    assert second.cost_usd == pytest.approx(0.002)
    assert (other.input_tokens, other.cost_usd) == (5, 0.01)
    spent = [first, second, other]
    assert sum(u.input_tokens for u in spent) == 35  # the true spend, not 45
    assert sum(u.cost_usd or 0 for u in spent) == pytest.approx(0.013)


def test_ledger_passes_per_run_reports_through() -> None:
    ledger = UsageLedger()
    assert ledger.charge("S", total(10, 20, 0.1), cumulative=False).input_tokens == 10
    assert ledger.charge("S", total(10, 20, 0.1), cumulative=False).input_tokens == 10
    assert ledger.charge(None, total(4, 4, None), cumulative=True).input_tokens == 4


def test_a_run_that_reported_nothing_leaves_the_total() -> None:
    """A killed run's spend shows up in the session's next total, and is counted once there."""
    ledger = UsageLedger()
    ledger.charge("S", total(10, 20, 0.1), cumulative=True)
    killed = ledger.charge("S", Usage(context_tokens=500), cumulative=True)
    assert not reported(killed)
    assert killed.context_tokens == 500
    after = ledger.charge("S", total(40, 80, 0.4), cumulative=True)
    assert (after.input_tokens, after.output_tokens) == (30, 60)
    assert after.cost_usd == pytest.approx(0.3)


def test_every_adapter_states_how_it_reports_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STONEFORGE_AGENT_COMMAND", "true")  # `command` needs one to be built
    cumulative = {name: get_adapter(name).cumulative_usage for name in known_agents()}
    assert {name for name, yes in cumulative.items() if yes} == {"claude", "codex", "copilot"}


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (Result(Outcome.FAILED, "resume_failed", session_id="S"), True),
        (Result(Outcome.FAILED, "crash", session_id=None), True),  # died before any session
        (Result(Outcome.FAILED, "crash", session_id="S"), False),  # it worked, then crashed
        (Result(Outcome.FAILED, "auth"), False),
        (Result(Outcome.FAILED, "timeout"), False),
        (Result(Outcome.RATE_LIMITED, "quota"), False),
        (Result(Outcome.COMPLETED, "success", session_id="S"), False),
    ],
)
def test_resume_failed(result: Result, failed: bool) -> None:
    assert resume_failed(result) is failed
