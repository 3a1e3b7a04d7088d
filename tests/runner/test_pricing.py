"""Cost for agents whose CLI reports tokens but no cost (runner.agents.pricing, issue 11 §3)."""

from __future__ import annotations

import json

import pytest

from bot.core.render_pull import AttemptRow, render_pull_body
from runner.agents import pricing
from runner.agents.base import Outcome, Result, Usage
from runner.job import usage_fields
from runner.tries import price_unreported
from runner.usage import UsageLedger

MILLION = 1_000_000


def test_the_table_is_dated_and_every_price_is_per_million_tokens() -> None:
    table = json.loads(pricing.PRICES.read_text())
    assert table["taken"] == "2026-12-03"
    assert table["unit"] == "USD per million tokens"
    for provider, models in table["providers"].items():
        assert models, provider
        for name, rates in models.items():
            assert {"input", "output"} <= set(rates), name
            assert all(0 < v < 200 for v in rates.values()), name


def test_a_listed_model_is_priced_field_by_field() -> None:
    usage = Usage(input_tokens=MILLION, cache_read=2 * MILLION, output_tokens=MILLION // 10)
    got = pricing.estimate("gpt-5-codex", usage)
    assert got.cost_usd == pytest.approx(1.25 + 2 * 0.125 + 1.0)
    assert not got.unknown_model
    assert "2026-12-03" in got.note


def test_a_dated_or_prefixed_name_finds_its_longest_listed_model() -> None:
    usage = Usage(output_tokens=MILLION)
    assert pricing.estimate("gpt-5-codex-2025-09-15", usage).cost_usd == 10.0
    assert pricing.estimate("gpt-5-mini-2025-08-07", usage).cost_usd == 2.0  # not gpt-5's 10
    assert pricing.estimate("openai/gpt-5-nano", usage).cost_usd == 0.4
    assert pricing.estimate("gemini-2.5-flash-lite", usage).cost_usd == 0.4  # not flash's 2.5


def test_an_unknown_model_counts_at_its_providers_highest_price_and_says_so() -> None:
    usage = Usage(input_tokens=MILLION, output_tokens=MILLION)
    got = pricing.estimate("gemini-9-ultra", usage)
    google = json.loads(pricing.PRICES.read_text())["providers"]["google"].values()
    assert got.cost_usd == max(m["input"] for m in google) + max(m["output"] for m in google)
    assert got.unknown_model
    assert "unknown model 'gemini-9-ultra'" in got.note
    assert "google's highest price" in got.note


def test_a_model_of_no_known_provider_counts_at_the_highest_price_of_any() -> None:
    got = pricing.estimate("local/test-model", Usage(output_tokens=MILLION))
    assert got.cost_usd == 75.0  # the dearest output in the table (claude-opus-4)
    assert "any provider's highest price" in got.note
    assert pricing.estimate(None, Usage(output_tokens=MILLION)).unknown_model


def test_the_adapters_provider_wins_over_the_name() -> None:
    usage = Usage(output_tokens=MILLION)
    got = pricing.estimate("my-finetune", usage, provider="openai")
    assert got.cost_usd == 10.0  # openai's highest output price
    assert "openai's highest price" in got.note


def test_the_runner_prices_a_run_that_reported_tokens_but_no_cost() -> None:
    result = Result(Outcome.COMPLETED, "success", usage=Usage(input_tokens=MILLION),
                    model="gpt-5")  # fmt: skip
    price_unreported(result, None, "openai")
    assert result.usage.cost_usd == 1.25
    assert result.usage.cost_note is not None


def test_a_reported_cost_and_a_run_without_usage_are_left_alone() -> None:
    claude = Result(Outcome.COMPLETED, "success", usage=Usage(input_tokens=10, cost_usd=0.5))
    price_unreported(claude, "claude-sonnet-4-5", "anthropic")
    assert (claude.usage.cost_usd, claude.usage.cost_note) == (0.5, None)
    killed = Result(Outcome.FAILED, "timeout")
    price_unreported(killed, "gpt-5", "openai")
    assert killed.usage.cost_usd is None  # nothing reported: nothing to price


def test_a_cumulative_session_is_charged_the_difference_of_its_estimates() -> None:
    ledger = UsageLedger()
    first = Result(Outcome.COMPLETED, "success", usage=Usage(input_tokens=MILLION))
    price_unreported(first, "gpt-5", None)
    assert ledger.charge("s", first.usage, cumulative=True).cost_usd == 1.25
    second = Result(Outcome.COMPLETED, "success", usage=Usage(input_tokens=3 * MILLION))
    price_unreported(second, "gpt-5", None)
    spent = ledger.charge("s", second.usage, cumulative=True)
    assert spent.cost_usd == pytest.approx(2.5)
    assert spent.cost_note == second.usage.cost_note


def test_the_report_carries_the_note_and_the_pull_request_shows_it() -> None:
    runs = [
        Usage(
            input_tokens=5,
            cost_usd=0.01,
            cost_note="unknown model 'x': counted at "
            "openai's highest price; estimated from tokens at the prices of 2026-12-03",
        )
    ]
    wire = usage_fields(runs)
    assert wire.cost_note is not None
    assert wire.cost_note.startswith("unknown model 'x'")
    row = AttemptRow(attempt=1, agent="codex", cost_usd=wire.cost_usd, cost_note=wire.cost_note)
    body = render_pull_body(7, "did it", [row])
    assert "| ≈ $0.01 |" in body
    assert "≈ Cost unknown model 'x': counted at openai's highest price" in body
    plain = render_pull_body(7, "did it", [AttemptRow(attempt=1, cost_usd=0.01)])
    assert "≈" not in plain
