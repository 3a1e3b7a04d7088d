"""The script agent writes a plan when its prompt is a planning prompt (runner.agents.script_agent),
from the real planning prompt (runner.prompt.build_plan_prompt)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.core.plan import Plan, validate_plan
from runner.prompt import build_plan_prompt
from tests.runner.test_planning import PLAN
from tests.runner.test_prompt_plan import make_plan_job


def run_agent(cwd: Path, prompt: str) -> tuple[int, list[dict[str, Any]]]:
    """The agent as the runner starts it, without STONEFORGE_PLAN_FILE: the prompt names the
    file."""
    proc = subprocess.run([sys.executable, "-m", "runner.agents.script_agent"], input=prompt,
                          capture_output=True, text=True, cwd=cwd, timeout=30,
                          check=False, env={"PATH": "/usr/bin:/bin"},
                          )  # fmt: skip
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def planning_prompt(tmp_path: Path, plan: dict[str, Any], errors: tuple[str, ...] = ()) -> str:
    body = f"The epic.\n\n```stoneforge-plan\n{json.dumps(plan)}\n```\n"
    job = make_plan_job(body=body)
    return build_plan_prompt(job, tmp_path, tmp_path / "out" / "plan.json", [], errors=errors)


def test_writes_the_plan_block_to_the_plan_file(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    code, lines = run_agent(tmp_path, planning_prompt(tmp_path, PLAN))
    assert code == 0, lines
    written = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert written == PLAN
    summary = f"Wrote the plan of 3 tasks to {tmp_path}/out/plan.json."
    assert lines[-1] == {"type": "result", "status": "success", "summary": summary}


def test_invalid_first_writes_a_cycle_until_the_prompt_lists_errors(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    plan = {**PLAN, "invalid_first": True}
    assert run_agent(tmp_path, planning_prompt(tmp_path, plan))[0] == 0
    first = validate_plan(json.loads((tmp_path / "out" / "plan.json").read_text()))
    assert isinstance(first, list)
    assert any("cycle" in error for error in first)
    assert run_agent(tmp_path, planning_prompt(tmp_path, plan, errors=tuple(first)))[0] == 0
    second = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert second == PLAN
    assert isinstance(validate_plan(second), Plan)
