"""Resuming a session: the Claude and Codex adapters against their fakes, with a kept HOME.

The CLIs keep their sessions under HOME, so a resume works only when both runs share one (the
runner keeps one per job). Both CLIs report a resumed session's usage as running totals.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.agents.base import AgentAdapter, Outcome, Result, RunRequest, resume_failed
from runner.agents.claude import ClaudeAdapter
from runner.agents.codex import CodexAdapter
from runner.process import run_agent
from runner.usage import UsageLedger

FAKES = Path(__file__).resolve().parents[1] / "fakes"


@pytest.fixture(autouse=True)
def _python_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fakes' shebang is `/usr/bin/env python3`; make that resolve to this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)  # codex wants a repository
    return path


async def run(
    adapter: AgentAdapter, workdir: Path, home: Path, prompt: str, log: Path, **kw: object
) -> Result:
    env = {f"FAKE_{adapter.name.upper()}_ARGV_LOG": str(log)}
    req = RunRequest("octo/demo#1@1", prompt, workdir, extra_env=env, **kw)  # type: ignore[arg-type]
    return await run_agent(adapter, req, timeout_s=20, stall_timeout_s=10, home=home)


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_claude_resume_continues_the_session_with_running_totals(
    workdir: Path, tmp_path: Path
) -> None:
    adapter, home, log = (
        ClaudeAdapter(binary=str(FAKES / "fake_claude.py")),
        tmp_path / "h",
        tmp_path / "log",
    )
    first = await run(adapter, workdir, home, "Task. [[fake:resume_no_changes]]", log)
    assert first.outcome is Outcome.COMPLETED
    assert first.session_id
    again = await run(adapter, workdir, home, "Fix it.", log, resume_session=first.session_id)

    assert again.outcome is Outcome.COMPLETED, again.detail
    assert again.session_id == first.session_id
    assert (workdir / "done.txt").read_text() == "done\n"  # the scenario's "resumed" steps
    argv = [call["argv"] for call in calls(log)]
    assert "--resume" not in argv[0]
    assert argv[1][argv[1].index("--resume") + 1] == first.session_id
    # The CLI reports running totals: 1 turn, then 2 more (10 in / 20 out / $0.001 a turn).
    assert (first.usage.input_tokens, first.usage.cost_usd) == (10, pytest.approx(0.001))
    assert (again.usage.input_tokens, again.usage.cost_usd) == (30, pytest.approx(0.003))
    ledger = UsageLedger()
    spent = [ledger.charge(r.session_id, r.usage, cumulative=adapter.cumulative_usage)
             for r in (first, again)]  # fmt: skip
    assert [u.input_tokens for u in spent] == [10, 20]
    assert [u.cost_usd for u in spent] == [pytest.approx(0.001), pytest.approx(0.002)]


async def test_claude_resume_of_an_unknown_session_fails_at_once(
    workdir: Path, tmp_path: Path
) -> None:
    adapter, log = ClaudeAdapter(binary=str(FAKES / "fake_claude.py")), tmp_path / "log"
    missing = "0b0b0b0b-0000-4000-8000-000000000000"
    result = await run(adapter, workdir, tmp_path / "h", "Fix it.", log, resume_session=missing)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "resume_failed")
    assert "No conversation found" in (result.detail or "")
    assert resume_failed(result)


async def test_codex_exec_resume_keeps_the_thread_and_its_totals(
    workdir: Path, tmp_path: Path
) -> None:
    adapter, home, log = (
        CodexAdapter(binary=str(FAKES / "fake_codex.py")),
        tmp_path / "h",
        tmp_path / "log",
    )
    first = await run(adapter, workdir, home, "Task. [[fake:resume_tests_failed]]", log)
    assert first.outcome is Outcome.COMPLETED
    assert first.session_id
    assert (workdir / "answer.txt").read_text() == "41"
    again = await run(adapter, workdir, home, "Fix it.", log, resume_session=first.session_id)

    assert again.outcome is Outcome.COMPLETED, again.detail
    assert again.session_id == first.session_id
    assert (workdir / "answer.txt").read_text() == "42"
    second = calls(log)[1]
    assert second["argv"][-3:] == ["resume", first.session_id, "-"]  # type: ignore[index]
    assert second["prompt"] == "Fix it."
    # Thread totals, the cached input apart (2400 in, 1600 of them cached, a turn).
    assert (first.usage.input_tokens, again.usage.input_tokens) == (800, 1600)
    assert first.usage.cost_usd is None


async def test_codex_resume_of_an_unknown_thread_fails_at_once(
    workdir: Path, tmp_path: Path
) -> None:
    adapter, log = CodexAdapter(binary=str(FAKES / "fake_codex.py")), tmp_path / "log"
    missing = "0b0b0b0b-0000-4000-8000-000000000000"
    result = await run(adapter, workdir, tmp_path / "h", "Fix it.", log, resume_session=missing)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "resume_failed")
    assert result.session_id is None
    assert "no rollout found" in (result.detail or "")
    assert result.exit_code == 1


async def test_a_private_home_is_removed_so_nothing_resumes(workdir: Path, tmp_path: Path) -> None:
    """Without a kept HOME (the default) the session is gone after the run."""
    adapter, log = ClaudeAdapter(binary=str(FAKES / "fake_claude.py")), tmp_path / "log"
    req = RunRequest("t", "Task. [[fake:happy_path]]", workdir)
    first = await run_agent(adapter, req, timeout_s=20, stall_timeout_s=10)
    assert first.outcome is Outcome.COMPLETED
    assert first.session_id
    again = await run(
        adapter, workdir, tmp_path / "h", "Fix.", log, resume_session=first.session_id
    )
    assert again.reason == "resume_failed"
