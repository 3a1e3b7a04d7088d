"""A plan job for an agent whose CLI writes only inside its worktree (``writes_outside_workdir
= False``, aider's): the plan file is the worktree's ``.stoneforge/plan.json`` (runner.planning),
named in ``RunRequest.edit_files`` and never in ``extra_dirs``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import runner.agents
from runner.agents.aider import AiderAdapter
from runner.agents.base import Invocation, RunRequest
from runner.agents.script import ScriptAdapter
from runner.planning import read_plan
from tests.harness.runner_bot import Bot, git, plan_job, run_until
from tests.runner.test_planning import make_runner, origin_refs

# Writes a one-task plan where the environment says, but only inside its working directory
# (as aider would); told `silent`, writes nothing.
INSIDE_ONLY = """
import json, os, pathlib, sys
sys.stdin.read()
path = pathlib.Path(os.environ["STONEFORGE_PLAN_FILE"])
if path.resolve().is_relative_to(pathlib.Path.cwd().resolve()) and sys.argv[1] != "silent":
    path.write_text(json.dumps({"tasks": [{"title": "Written inside"}]}))
print(json.dumps({"type": "start"}))
print(json.dumps({"type": "result", "status": "success", "summary": "planned"}))
"""


class InsideOnlyAdapter(ScriptAdapter):
    name = "inside-only"
    writes_outside_workdir = False
    requests: list[RunRequest] = []
    mode = "write"

    def build(self, req: RunRequest) -> Invocation:
        InsideOnlyAdapter.requests.append(req)
        argv = [sys.executable, "-c", INSIDE_ONLY, self.mode]
        return Invocation(argv=argv, env=req.extra_env, cwd=req.workdir, stdin=req.prompt.encode())


class SilentInsideAdapter(InsideOnlyAdapter):
    name = "silent-inside"
    mode = "silent"


@pytest.fixture(autouse=True)
def _inside_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.agents._FACTORIES, "inside-only", InsideOnlyAdapter)
    monkeypatch.setitem(runner.agents._FACTORIES, "silent-inside", SilentInsideAdapter)
    monkeypatch.setattr(InsideOnlyAdapter, "requests", [])


def test_aider_says_it_writes_only_inside_its_worktree() -> None:
    assert AiderAdapter.writes_outside_workdir is False


async def test_the_plan_is_written_and_read_in_the_worktrees_scratch_folder(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    before = origin_refs(origin)
    fake.jobs = [plan_job(origin, 50, None, agent={"name": "inside-only", "model": None})]
    events: list[dict[str, Any]] = []
    await run_until(make_runner(url, tmp_path, events), fake, 1)

    result = fake.results["octo/demo#50@plan-p50-1"]
    assert result["outcome"] == "planned", result
    assert result["plan"] == {"tasks": [{"title": "Written inside"}]}
    started = next(e for e in events if e["type"] == "job_started")
    worktree, plan_file = Path(started["worktree"]), Path(started["plan_file"])
    assert plan_file == worktree / ".stoneforge" / "plan.json"
    [req] = InsideOnlyAdapter.requests
    assert (req.extra_dirs, req.edit_files) == ([], [plan_file])
    assert req.extra_env["STONEFORGE_PLAN_FILE"] == str(plan_file)
    assert "in the checkout's scratch folder, never committed" in req.prompt
    assert origin_refs(origin) == before
    assert_gone(worktree, tmp_path / "work")


def assert_gone(worktree: Path, work: Path) -> None:
    """Nothing left: the worktree (its scratch folder with it), no plan folder outside."""
    assert not worktree.exists()
    assert not list((work / "plans").glob("*"))


async def test_a_plan_file_the_base_holds_is_not_taken_for_the_agents(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    # The repository commits a `.stoneforge/plan.json`; the agent writes nothing: no plan.
    seed = tmp_path / "seed"
    (seed / ".stoneforge").mkdir()
    (seed / ".stoneforge" / "plan.json").write_text('{"tasks": [{"title": "Stale"}]}')
    git("add", "--all", "--force", cwd=seed)
    git("commit", "--quiet", "-m", "a stale plan", cwd=seed)
    git("push", "--quiet", str(origin), "main", cwd=seed)
    fake, url = bot
    fake.jobs = [plan_job(origin, 51, None, agent={"name": "silent-inside", "model": None})]
    events: list[dict[str, Any]] = []
    await run_until(make_runner(url, tmp_path, events), fake, 1)

    result = fake.results["octo/demo#51@plan-p51-1"]
    assert (result["outcome"], result["reason"]) == ("failed", "no_changes"), result
    assert "no plan file was written" in result["detail"]


def test_the_outside_folder_is_used_for_every_other_adapter() -> None:
    # The other real adapters leave writes_outside_workdir at its default: the folder outside.
    for name in ("claude", "codex", "gemini", "opencode", "copilot", "script"):
        adapter = runner.agents.get_adapter(name)
        assert getattr(adapter, "writes_outside_workdir", True), name


def test_the_plan_is_never_read_through_a_symlinked_folder(tmp_path: Path) -> None:
    # In the worktree the agent could swap `.stoneforge/` for a link to a host folder.
    host = tmp_path / "host"
    host.mkdir()
    (host / "plan.json").write_text('{"tasks": [{"title": "a host file"}]}')
    scratch = tmp_path / "wt" / ".stoneforge"
    scratch.parent.mkdir()
    scratch.symlink_to(host)
    read = read_plan(scratch / "plan.json")
    assert read.plan is None
    assert "cannot be read" in read.errors[0]
    assert read_plan(host / "plan.json").plan == {"tasks": [{"title": "a host file"}]}
