"""ClaudeAdapter against tests/fakes/fake_claude: only the shapes the real binary cannot be made
to produce offline (tests/conformance/test_claude.py runs the real one for everything else).

Kept here: a subscription limit (``rate_limit_event`` with ``resetsAt``: an API key's 429 never
produces one), garbage and unknown lines, a crash mid-stream (OOM, exit 137), a startup error
with stderr only, SIGTERM ignored, the wall-clock timeout, a kill after compaction, the argv the
adapter builds, and a missing binary."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.agents import get_adapter
from runner.agents.base import Outcome, RunRequest
from runner.agents.claude import ClaudeAdapter, ClaudeStreamParser
from runner.process import run_agent

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_claude.py"


@pytest.fixture(autouse=True)
def _python_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake's shebang is `/usr/bin/env python3`; make that resolve to this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")


def request(tmp_path: Path, scenario: str, **kw: object) -> RunRequest:
    workdir = tmp_path / "wt"
    workdir.mkdir(exist_ok=True)
    return RunRequest(
        task_id="octo/demo#1@1", prompt=f"Do it. [[fake:{scenario}]]", workdir=workdir, **kw
    )  # type: ignore[arg-type]


async def run(tmp_path: Path, scenario: str, *, stall: float = 10, wall: float = 20, **kw: object):
    adapter = ClaudeAdapter(binary=str(FAKE))
    return await run_agent(
        adapter,
        request(tmp_path, scenario, **kw),
        timeout_s=wall,
        stall_timeout_s=stall,
        kill_grace_s=0.5,
    )


def test_binary_comes_from_env_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STONEFORGE_CLAUDE_BIN", "/opt/claude-x")
    assert get_adapter("claude").build(RunRequest("t", "p", Path("."))).argv[0] == "/opt/claude-x"
    assert ClaudeAdapter(binary="/b").binary == "/b"


def test_extra_dirs_are_added_as_writable(tmp_path: Path) -> None:
    """A plan job's plan folder lies outside the worktree: claude may write there."""
    req = RunRequest("t", "p", tmp_path, extra_dirs=[Path("/w/plans/a"), Path("/w/plans/b")])
    argv = ClaudeAdapter(binary="claude").build(req).argv
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--add-dir"]
    assert pairs == ["/w/plans/a", "/w/plans/b"]
    assert (
        "--add-dir" not in ClaudeAdapter(binary="claude").build(RunRequest("t", "p", tmp_path)).argv
    )


def test_build_argv_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.delenv("CLAUDE_CODE_OAUTH_TOKEN", raising=False)
    req = RunRequest(
        "t",
        "the prompt",
        tmp_path,
        model="opus",
        session_id="S1",
        system_append="be brief",
        max_turns=7,
    )
    inv = ClaudeAdapter(binary="claude").build(req)
    assert inv.argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    flags = dict(zip(inv.argv[5::2], inv.argv[6::2], strict=False))
    assert flags["--permission-mode"] == "dontAsk"
    assert flags["--max-turns"] == "7"
    assert flags["--model"] == "opus"
    assert flags["--session-id"] == "S1"
    assert flags["--append-system-prompt"] == "be brief"
    assert "the prompt" not in inv.argv
    assert inv.stdin == b"the prompt"
    assert inv.env["ANTHROPIC_API_KEY"] == "sk-test"
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in inv.env
    assert inv.cwd == tmp_path


async def test_happy_path(tmp_path: Path) -> None:
    result = await run(tmp_path, "happy_path")
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success")
    assert result.final_text == "All tests pass."
    assert result.usage.cost_usd == pytest.approx(0.0123)
    assert result.usage.output_tokens == 40
    assert result.session_id
    assert result.exit_code == 0
    assert result.num_turns == 2


async def test_argv_accepted_by_fake_and_session_id_used(tmp_path: Path) -> None:
    log = tmp_path / "argv.json"
    result = await run(
        tmp_path,
        "happy_path",
        session_id="11111111-2222-3333-4444-555555555555",
        model="m",
        system_append="x",
        budget_usd=1.5,
        extra_env={"FAKE_CLAUDE_ARGV_LOG": str(log)},
    )
    assert result.session_id == "11111111-2222-3333-4444-555555555555"
    assert "[[fake:happy_path]]" in json.loads(log.read_text())["prompt"]


@pytest.mark.parametrize(
    ("scenario", "outcome", "reason"),
    [
        ("garbage_lines", Outcome.COMPLETED, "success"),
        ("unknown_events", Outcome.COMPLETED, "success"),
        ("crash_midstream", Outcome.FAILED, "crash"),
        ("startup_error", Outcome.FAILED, "crash"),
    ],
)
async def test_scenarios_classify(
    tmp_path: Path, scenario: str, outcome: Outcome, reason: str
) -> None:
    result = await run(tmp_path, scenario)
    assert (result.outcome, result.reason) == (outcome, reason)


async def test_subscription_limit_has_retry_at(tmp_path: Path) -> None:
    result = await run(tmp_path, "subscription_limit")
    assert result.outcome is Outcome.RATE_LIMITED
    assert result.retry_at is not None
    assert 3000 < (result.retry_at - datetime.now(UTC)).total_seconds() < 3700


async def test_startup_error_keeps_stderr(tmp_path: Path) -> None:
    result = await run(tmp_path, "startup_error")
    assert result.exit_code == 1
    assert result.detail
    assert "Invalid settings file" in result.detail


async def test_crash_detail_has_stderr_tail(tmp_path: Path) -> None:
    result = await run(tmp_path, "crash_midstream")
    assert result.exit_code == 137
    assert "out of memory" in (result.detail or "")


async def test_sigterm_ignored_escalates_to_sigkill(tmp_path: Path) -> None:
    result = await run(tmp_path, "ignore_sigterm", stall=0.5)
    assert result.reason == "stalled"
    assert result.exit_code == -9


async def test_wall_clock_timeout(tmp_path: Path) -> None:
    scenario = tmp_path / "chatty.json"
    steps = [
        {"emit": "init"},
        {"repeat": {"times": 1000, "steps": [{"emit": "text", "text": "."}, {"sleep": 0.05}]}},
    ]
    scenario.write_text(json.dumps(steps))
    result = await run(
        tmp_path, "x", stall=5, wall=1.0, extra_env={"FAKE_CLAUDE_SCENARIO": str(scenario)}
    )
    assert (result.outcome, result.reason) == (Outcome.FAILED, "timeout")


def test_parser_tolerates_partial_and_non_object_lines() -> None:
    parser = ClaudeStreamParser()
    for line in ['{"type":"assis', "[]", "null", "", '{"type":"result"']:
        parser.feed_stdout(line)
    assert parser.finish(0, None).outcome is Outcome.FAILED
    assert parser.garbage == 4


def test_parser_later_success_clears_rate_signal() -> None:
    parser = ClaudeStreamParser()
    parser.feed_stdout(
        json.dumps({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected"}})
    )
    parser.feed_stdout(
        json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok"})
    )
    assert parser.finish(0, None).outcome is Outcome.COMPLETED


def test_parser_empty_success_is_failure() -> None:
    parser = ClaudeStreamParser()
    parser.feed_stdout(
        json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": ""})
    )
    assert parser.finish(0, None).reason == "empty_result"


def test_parser_kill_after_compaction_hands_off() -> None:
    parser = ClaudeStreamParser()
    parser.feed_stdout(
        json.dumps({"type": "system", "subtype": "compact_boundary", "compact_metadata": {}})
    )
    assert parser.finish(None, "stalled").outcome is Outcome.HANDOFF_NEEDED


async def test_missing_binary_is_a_failed_result(tmp_path: Path) -> None:
    adapter = ClaudeAdapter(binary=str(tmp_path / "no-such-claude"))
    req = request(tmp_path, "happy_path")
    result = await run_agent(adapter, req, timeout_s=5, stall_timeout_s=5)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "spawn_failed")
    assert "no-such-claude" in (result.detail or "")
