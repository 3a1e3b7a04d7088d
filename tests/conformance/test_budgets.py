"""Budgets hold for agents whose CLI reports no cost: Codex and Gemini CLI, real and pinned.

A real ``runner.loop.Runner`` claims a job with a per-task budget from the bot's side of the
protocol (tests.harness.runner_bot), and runs the pinned CLI against a scripted model server
that reports many tokens for a turn that changes nothing. The runner prices the run from
``runner/agents/prices.json`` (the CLI says no cost), finds the budget spent, and hands the job
off with reason ``budget`` instead of running the agent again; the result carries the estimated
cost and its note, which the bot adds to the task's and the day's spend (``bot/results.py``).
A second job with the same budget and a cheaper turn is let run its retry: the cap is what stops
the first, not the scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.loop import Runner
from tests.conformance.clis import require
from tests.harness.runner_bot import TOKEN, Bot, bot_server, job, make_origin, run_until
from tests.models.gemini import GeminiServer
from tests.models.openai_responses import ResponsesServer
from tests.models.scenario import Dialect, Say, Script, Turn, reply
from tests.models.server import ScriptedServer as _Server

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

NO_TOOLS = Dialect(write=lambda p, c: ("none", {}), shell=lambda c: ("none", {}))
BUDGET = 0.05


def _codex(monkeypatch: pytest.MonkeyPatch, turns: list[Turn]) -> tuple[_Server, str]:
    server = ResponsesServer(Script(turns, NO_TOOLS), model="gpt-5.1-codex").start()
    monkeypatch.setenv("STONEFORGE_CODEX_BIN", str(require("codex")))
    monkeypatch.setenv("STONEFORGE_CODEX_BASE_URL", f"{server.url}/v1")
    monkeypatch.setenv("CODEX_API_KEY", "dummy")
    return server, "gpt-5.1-codex"


def _gemini(monkeypatch: pytest.MonkeyPatch, turns: list[Turn]) -> tuple[_Server, str]:
    server = GeminiServer(Script(turns, NO_TOOLS), model="gemini-2.5-flash").start()
    monkeypatch.setenv("STONEFORGE_GEMINI_BIN", str(require("gemini")))
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
    monkeypatch.setenv("GEMINI_API_KEY", "dummy")
    return server, "gemini-2.5-flash"


CLIS: dict[str, Callable[[pytest.MonkeyPatch, list[Turn]], tuple[_Server, str]]] = {
    "codex": _codex,
    "gemini": _gemini,
}


async def _run(cli: str, budget_job: dict[str, Any], tmp_path: Path) -> tuple[Bot, dict[str, Any]]:
    async with bot_server() as (fake, url):
        fake.jobs = [budget_job]
        runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
        await run_until(runner, fake, 1, limit_s=240)
    return fake, fake.results[budget_job["job_id"]]


@pytest.mark.parametrize("cli", sorted(CLIS))
async def test_a_run_priced_past_the_budget_stops_the_job_before_another_run(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200k input tokens: $0.25 at gpt-5.1-codex's $1.25/M, $0.06 at gemini-2.5-flash's $0.30/M;
    # either is past the $0.05 budget. The agent changes nothing, so without the budget the
    # runner would ask it again.
    heavy = reply(Say("I looked around; nothing to change."), input_tokens=200_000)
    server, model = CLIS[cli](monkeypatch, [heavy, reply(Say("Still nothing."))])
    try:
        origin = make_origin(tmp_path)
        task = {**job(origin, 31, {}), "body": "Look around.",
                "agent": {"name": cli, "model": model}, "budget_usd": BUDGET}  # fmt: skip
        fake, result = await _run(cli, task, tmp_path)
    finally:
        server.stop()

    assert (result["outcome"], result["reason"]) == ("handoff", "budget"), result
    assert [t["reason"] for t in result["attempt_log"]] == ["no_changes"]
    spent = result["usage"]
    assert spent["cost_usd"] > BUDGET
    assert spent["cost_note"].startswith("estimated from tokens at the prices of")
    assert server.script.played == 1  # the second turn was never asked for
    (upload,) = [u for _, u in fake.transcripts]
    assert upload["usage"]["cost_usd"] == spent["cost_usd"]


@pytest.mark.parametrize("cli", sorted(CLIS))
async def test_within_the_budget_the_retry_runs(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    light = reply(Say("Nothing to change."), input_tokens=1_000)
    server, model = CLIS[cli](monkeypatch, [light, reply(Say("Still nothing."))])
    try:
        origin = make_origin(tmp_path)
        task = {**job(origin, 32, {}), "body": "Look around.",
                "agent": {"name": cli, "model": model}, "budget_usd": BUDGET}  # fmt: skip
        _, result = await _run(cli, task, tmp_path)
    finally:
        server.stop()

    assert (result["outcome"], result["reason"]) == ("failed", "no_changes"), result
    assert len(result["attempt_log"]) == 2
    assert 0 < result["usage"]["cost_usd"] < BUDGET
    assert server.script.played == 2
