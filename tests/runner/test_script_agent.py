"""The deterministic demo agent: its own executable and its adapter."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.agents import get_adapter, known_agents
from runner.agents.base import Outcome, RunRequest
from runner.agents.script import ScriptAdapter
from runner.process import run_agent


def prompt(script: dict | str, prefix: str = "Task: do it.\n\n") -> str:
    body = script if isinstance(script, str) else json.dumps(script)
    return f"{prefix}```stoneforge-script\n{body}\n```\n\nThanks."


def agent(tmp_path: Path, text: str, *args: str) -> tuple[int, list[dict]]:
    proc = subprocess.run(
        [sys.executable, "-m", "runner.agents.script_agent", *args],
        input=text,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_applies_write_replace_append(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "auth.py").write_text("token = old_value\n")
    script = {
        "sleep": 0,
        "edits": [
            {"path": "app/users.py", "write": "def users():\n    return []\n"},
            {"path": "app/auth.py", "replace": ["old_value", "new_value"]},
            {"path": "CHANGELOG.md", "append": "- added users\n"},
            {"path": "CHANGELOG.md", "append": "- fixed auth\n"},
        ],
        "summary": "Added the endpoint",
    }
    code, lines = agent(tmp_path, prompt(script))
    assert code == 0
    assert lines[0] == {"type": "start"}
    assert [entry["path"] for entry in lines if entry["type"] == "edit"] == [
        "app/users.py",
        "app/auth.py",
        "CHANGELOG.md",
        "CHANGELOG.md",
    ]
    assert lines[-1] == {"type": "result", "status": "success", "summary": "Added the endpoint"}
    assert (tmp_path / "app" / "users.py").read_text() == "def users():\n    return []\n"
    assert (tmp_path / "app" / "auth.py").read_text() == "token = new_value\n"
    assert (tmp_path / "CHANGELOG.md").read_text() == "- added users\n- fixed auth\n"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"path": "/etc/passwd", "write": "x"}, "absolute"),
        ({"path": "../outside.txt", "write": "x"}, "escapes"),
        ({"path": "a/../../outside.txt", "append": "x"}, "escapes"),
        ({"path": ".git/config", "write": "x"}, ".git"),
        ({"path": "missing.py", "replace": ["a", "b"]}, "not found"),
        ({"path": "f.txt", "write": "x", "append": "y"}, "exactly one"),
    ],
)
def test_rejects_bad_edits(tmp_path: Path, edit: dict, message: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, lines = agent(work, prompt({"edits": [edit]}))
    assert code == 1
    assert lines[-1]["status"] == "error"
    assert message in lines[-1]["message"]
    assert not (tmp_path / "outside.txt").exists()


def test_replace_with_absent_text_is_error(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("hello\n")
    code, lines = agent(tmp_path, prompt({"edits": [{"path": "f.py", "replace": ["bye", "x"]}]}))
    assert code == 1
    assert "not found" in lines[-1]["message"]
    assert (tmp_path / "f.py").read_text() == "hello\n"


@pytest.mark.parametrize(
    "text",
    [
        "no block here",
        prompt("{not json"),
        prompt("[1]"),
        prompt({"edits": []}) + prompt({"edits": []}),
    ],
)
def test_bad_prompt_is_error(tmp_path: Path, text: str) -> None:
    code, lines = agent(tmp_path, text)
    assert code == 1
    assert lines[-1]["status"] == "error"


def test_review_feedback_script_wins(tmp_path: Path) -> None:
    review = prompt({"edits": [{"path": "r.txt", "write": "from the review\n"}]})
    text = (
        prompt({"edits": [{"path": "r.txt", "write": "from the issue\n"}]})
        + "\n## Review feedback to address\n\n- @lead: please change it\n"
        + "\n".join("  " + line for line in review.splitlines())
    )
    code, lines = agent(tmp_path, text)
    assert code == 0, lines
    assert (tmp_path / "r.txt").read_text() == "from the review\n"


def test_sleep_scale(tmp_path: Path) -> None:
    started = time.monotonic()
    code, _ = agent(tmp_path, prompt({"sleep": 30, "edits": []}), "--sleep-scale", "0.01")
    assert code == 0
    assert time.monotonic() - started < 10


def test_registry() -> None:
    assert {"claude", "script"} <= set(known_agents())
    assert isinstance(get_adapter("script"), ScriptAdapter)
    with pytest.raises(ValueError, match="known agents: .*script"):
        get_adapter("nope")


def test_build_passes_sleep_scale(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STONEFORGE_SCRIPT_SLEEP_SCALE", "0.5")
    inv = ScriptAdapter().build(RunRequest("t", "p", tmp_path))
    assert inv.argv == [sys.executable, "-m", "runner.agents.script_agent", "--sleep-scale", "0.5"]
    assert inv.stdin == b"p"
    assert inv.cwd == tmp_path


async def test_adapter_end_to_end(tmp_path: Path) -> None:
    req = RunRequest(
        "t", prompt({"edits": [{"path": "x.txt", "write": "1"}], "summary": "S"}), tmp_path
    )
    result = await run_agent(ScriptAdapter(), req, timeout_s=30, stall_timeout_s=30)
    assert (result.outcome, result.reason, result.final_text) == (Outcome.COMPLETED, "success", "S")
    assert (tmp_path / "x.txt").read_text() == "1"

    req = RunRequest("t", prompt({"edits": [{"path": "x.txt", "replace": ["zzz", "y"]}]}), tmp_path)
    result = await run_agent(ScriptAdapter(), req, timeout_s=30, stall_timeout_s=30)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "script_error")
    assert "not found" in (result.detail or "")


async def test_adapter_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STONEFORGE_SCRIPT_SLEEP_SCALE", raising=False)
    req = RunRequest("t", prompt({"sleep": 60, "edits": []}), tmp_path)
    result = await run_agent(ScriptAdapter(), req, timeout_s=1, stall_timeout_s=30, kill_grace_s=1)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "timeout")


async def test_worktree_runner_package_is_not_imported(tmp_path: Path) -> None:
    # A repository with its own `runner` package must not hijack `-m runner.agents.script_agent`.
    (tmp_path / "runner" / "agents").mkdir(parents=True)
    (tmp_path / "runner" / "__init__.py").write_text("raise SystemExit(3)\n")
    req = RunRequest("t", prompt({"edits": [], "summary": "ok"}), tmp_path)
    result = await run_agent(ScriptAdapter(), req, timeout_s=30, stall_timeout_s=30)
    assert result.outcome is Outcome.COMPLETED


def test_resolve_both_keeps_the_base_then_the_task_lines() -> None:
    from runner.agents.script_agent import resolve_both

    text = (
        "head\n<<<<<<< HEAD\n- base entry\n- shared\n||||||| parent\n- old\n=======\n"
        "- task entry\n- shared\n>>>>>>> 1234 (task)\ntail\n"
    )
    assert resolve_both(text) == "head\n- base entry\n- shared\n- task entry\ntail\n"


def test_a_resolve_prompt_resolves_the_named_files_and_a_fix_prompt_runs_the_fix(
    tmp_path: Path,
) -> None:
    (tmp_path / "NOTES.md").write_text("<<<<<<< HEAD\na\n=======\nb\n>>>>>>> x\n")
    (tmp_path / "other.md").write_text("<<<<<<< HEAD\nleft alone\n=======\n>>>>>>> x\n")
    fix = {"edits": [{"path": "f.txt", "write": "fixed\n"}], "summary": "fixed"}
    script = {"edits": [{"path": "f.txt", "write": "first\n"}], "summary": "s", "fix": fix}
    resolve_prompt = (
        "# Resolve the conflicts of #3: Notes\n\nconflicts in `NOTES.md`.\n\n"
        "## `NOTES.md` (with the conflict markers)\n\n```text\n...\n```\n\n"
        + prompt(script, "## The task (issue #3)\n\n")
    )
    code, lines = agent(tmp_path, resolve_prompt)
    assert code == 0, lines
    assert (tmp_path / "NOTES.md").read_text() == "a\nb\n"
    assert "<<<<<<<" in (tmp_path / "other.md").read_text(), "only the files it was given"
    assert not (tmp_path / "f.txt").exists(), "a resolution does not run the task's script"

    code, lines = agent(tmp_path, prompt(script) + "\n## Failing checks to fix\n\n- ci: failure\n")
    assert code == 0, lines
    assert (tmp_path / "f.txt").read_text() == "fixed\n"
    assert lines[-1]["summary"] == "fixed"
    code, _ = agent(tmp_path, prompt(script))
    assert (tmp_path / "f.txt").read_text() == "first\n"
