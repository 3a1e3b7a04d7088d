"""At start-up the runner probes every agent CLI and never claims work for one it cannot run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runner.loop import Runner, probe_agents

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def test_missing_clis_are_named_with_the_setting_that_fixes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only the interpreter on PATH (the fakes' shebang needs it): no agent CLI at all.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.setenv("STONEFORGE_CODEX_BIN", str(FAKES / "fake_codex.py"))
    monkeypatch.delenv("STONEFORGE_CLAUDE_BIN", raising=False)
    monkeypatch.delenv("STONEFORGE_AGENT_COMMAND", raising=False)
    missing = probe_agents()
    assert "codex" not in missing, missing.get("codex")
    assert "script" not in missing
    assert "STONEFORGE_CLAUDE_BIN" in missing["claude"]
    assert "STONEFORGE_GEMINI_BIN" in missing["gemini"]
    assert "STONEFORGE_AGENT_COMMAND" in missing["command"]


def test_unavailable_agents_include_missing_and_rate_limited(tmp_path: Path) -> None:
    runner = Runner("http://127.0.0.1:9", "t", work_dir=tmp_path)
    runner.missing = {"gemini": "gemini not found on PATH"}
    runner.paused = {"claude": 4_102_444_800.0, "codex": 0.0}  # far future, long past
    assert runner.unavailable_agents() == ["claude", "gemini"]
