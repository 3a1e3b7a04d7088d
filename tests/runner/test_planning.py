"""Plan jobs end to end: a real runner against the bot's side of the protocol and a real origin;
the script agent writes the plan (runner.planning, runner.agents.script_agent)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import runner.agents
from action.__main__ import run_job as action_run_job
from action.__main__ import summary_markdown
from action.inputs import ActionInputs, RunContext
from bot.core.plan import Plan, validate_plan
from bot.core.protocol import PLAN_MAX_BYTES, PlannedResult
from runner.agents.base import Invocation, RunRequest
from runner.agents.script import ScriptAdapter
from runner.loop import Runner
from runner.planning import read_plan
from runner.process import build_env
from tests.harness.runner_bot import TOKEN, Bot, git, plan_job, run_until

PLAN: dict[str, Any] = {
    "summary": "Users, then their endpoint, then the docs.",
    "notes": ["Users live in app/users.py as a list of dicts."],
    "tasks": [
        {"title": "Add the user store", "files": ["app/users.py"], "size": "s"},
        {"title": "Add the users endpoint", "blockers": [0], "files": ["app/api.py"]},
        {"title": "Document the endpoint", "blockers": [1], "files": ["README.md"]},
    ],
}

# An agent that says it succeeded and writes nothing.
SILENT = (
    "import json, sys; sys.stdin.read(); print(json.dumps({'type': 'start'})); "
    "print(json.dumps({'type': 'result', 'status': 'success', 'summary': 'done'}))"
)


# An agent that scribbles on the worktree (a tracked file, a new file, a commit) and writes a
# one-task plan to the file its environment names.
SCRIBBLER = """
import json, os, pathlib, subprocess, sys
sys.stdin.read()
pathlib.Path("README.md").write_text("scribbled\\n")
pathlib.Path("new.txt").write_text("new\\n")
subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qam", "x"])
plan = {"tasks": [{"title": "Only task"}]}
pathlib.Path(os.environ["STONEFORGE_PLAN_FILE"]).write_text(json.dumps(plan))
print(json.dumps({"type": "start"}))
print(json.dumps({"type": "result", "status": "success", "summary": "planned"}))
"""


class ScribblerAdapter(ScriptAdapter):
    name = "scribbler"

    def build(self, req: RunRequest) -> Invocation:
        argv = [sys.executable, "-c", SCRIBBLER]
        return Invocation(argv=argv, env=req.extra_env, cwd=req.workdir, stdin=req.prompt.encode())


class SilentAdapter(ScriptAdapter):
    name = "silent"

    def build(self, req: RunRequest) -> Invocation:
        argv = [sys.executable, "-c", SILENT]
        return Invocation(argv=argv, env={}, cwd=req.workdir, stdin=req.prompt.encode())


def origin_refs(origin: Path) -> str:
    return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=origin)


def make_runner(url: str, tmp_path: Path, events: list[dict[str, Any]]) -> Runner:
    return Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", on_event=events.append,
                  heartbeat_s=0.2, claim_wait_s=1, retry_base_s=0.05)  # fmt: skip


async def test_a_plan_job_sends_the_plan_and_leaves_no_trace(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    before = origin_refs(origin)
    main = git("rev-parse", "main", cwd=origin).strip()
    fake.jobs = [plan_job(origin, 40, PLAN, base_sha=main, guidance="keep it small")]
    events: list[dict[str, Any]] = []
    await run_until(make_runner(url, tmp_path, events), fake, 1)

    result = fake.results["octo/demo#40@plan-p40-1"]
    assert result["outcome"] == "planned", result
    assert result["branch"] == ""
    assert result["errors"] == []
    assert result["plan"] == PLAN
    assert isinstance(validate_plan(result["plan"]), Plan)
    assert [(t["try"], t["outcome"], t["reason"]) for t in result["attempt_log"]] == [
        (1, "completed", "success")
    ]
    assert "3 tasks" in result["summary"]
    assert [t for job_id, t in fake.transcripts if job_id == "octo/demo#40@plan-p40-1"]

    # Nothing pushed, nothing left: the worktree and the plan's folder are gone, and the mirror
    # holds no branch of the job.
    assert origin_refs(origin) == before
    started = next(e for e in events if e["type"] == "job_started")
    assert_no_trace(tmp_path / "work", Path(started["worktree"]), Path(started["plan_file"]))


def assert_no_trace(work: Path, worktree: Path, plan_file: Path) -> None:
    assert not plan_file.is_relative_to(worktree)
    assert plan_file.is_relative_to(work)
    assert not worktree.exists()
    assert not plan_file.parent.exists()
    mirror = work / "mirrors" / "octo" / "demo.git"
    assert not git("for-each-ref", "refs/heads", cwd=mirror).strip()
    assert not list((work / "workspaces").glob("*/*/*"))


async def test_an_invalid_first_plan_is_fixed_on_the_second_try(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    fake.jobs = [plan_job(origin, 41, {**PLAN, "invalid_first": True})]
    await run_until(make_runner(url, tmp_path, []), fake, 1)

    result = fake.results["octo/demo#41@plan-p41-1"]
    assert result["outcome"] == "planned", result
    assert result["errors"] == []
    assert result["plan"] == PLAN
    assert [(t["try"], t["outcome"], t["reason"]) for t in result["attempt_log"]] == [
        (1, "failed", "invalid_plan"),
        (2, "completed", "success"),
    ]
    assert len([1 for job_id, _ in fake.transcripts if job_id == "octo/demo#41@plan-p41-1"]) == 2


async def test_a_plan_job_whose_agent_writes_nothing_fails_with_the_reason(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(runner.agents._FACTORIES, "silent", SilentAdapter)
    fake, url = bot
    fake.jobs = [
        plan_job(origin, 42, PLAN, agent={"name": "silent", "model": None}),
        plan_job(origin, 43, None),  # the script agent finds no plan to write
    ]
    await run_until(make_runner(url, tmp_path, []), fake, 2)

    silent = fake.results["octo/demo#42@plan-p42-1"]
    assert (silent["outcome"], silent["reason"]) == ("failed", "no_changes")
    assert "wrote no plan, also when asked again" in silent["detail"]
    assert "no plan file was written" in silent["detail"]
    assert [(t["try"], t["reason"]) for t in silent["attempt_log"]] == [
        (1, "no_plan"),
        (2, "no_plan"),
    ]
    script = fake.results["octo/demo#43@plan-p43-1"]
    assert (script["outcome"], script["reason"]) == ("failed", "script_error")
    assert "expected one stoneforge-plan block, found 0" in script["detail"]


async def test_the_agents_edits_are_discarded_and_nothing_is_pushed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(runner.agents._FACTORIES, "scribbler", ScribblerAdapter)
    fake, url = bot
    before = origin_refs(origin)
    fake.jobs = [plan_job(origin, 45, None, agent={"name": "scribbler", "model": None})]
    events: list[dict[str, Any]] = []
    await run_until(make_runner(url, tmp_path, events), fake, 1)

    result = fake.results["octo/demo#45@plan-p45-1"]
    assert result["outcome"] == "planned", result
    assert result["plan"] == {"tasks": [{"title": "Only task"}]}
    assert origin_refs(origin) == before
    started = next(e for e in events if e["type"] == "job_started")
    assert_no_trace(tmp_path / "work", Path(started["worktree"]), Path(started["plan_file"]))


def test_the_plan_file_is_read_only_as_a_regular_file_within_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    assert read_plan(path).plan is None
    path.write_text("[1, 2]")
    assert read_plan(path).errors == ["the plan file must hold one JSON object (the plan)"]
    path.write_text("{not json")
    assert "does not hold JSON" in read_plan(path).errors[0]
    path.write_text(json.dumps({"tasks": []}))
    read = read_plan(path)
    assert read.plan == {"tasks": []}
    assert read.errors
    path.write_bytes(b" " * (PLAN_MAX_BYTES + 1))
    assert "larger than" in read_plan(path).errors[0]
    secret = tmp_path / "host-secret.json"
    secret.write_text(json.dumps(PLAN))
    path.unlink()
    path.symlink_to(secret)
    assert read_plan(path).plan is None  # never followed out of the plan's folder


def test_the_plan_file_variable_reaches_the_agent(tmp_path: Path) -> None:
    env = build_env({"STONEFORGE_PLAN_FILE": "/w/plan.json", "STONEFORGE_OTHER": "x"},
                    home=tmp_path, base={})  # fmt: skip
    assert env["STONEFORGE_PLAN_FILE"] == "/w/plan.json"
    assert "STONEFORGE_OTHER" not in env


async def test_the_action_runs_a_plan_job_and_summarises_it(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    """The GitHub Action runs a plan job with the runner's code (``Runner.run_job``)."""
    fake, url = bot
    item = plan_job(origin, 44, PLAN)
    job = fake.answer(item).job  # handed out, as the bot's claim endpoint for the action does
    assert job is not None
    inputs = ActionInputs(job_id=job.job_id, bot_url=url, job_token=TOKEN)
    ctx = RunContext(temp_dir=tmp_path, server_url="https://github.example")
    report = await action_run_job(job, inputs, ctx)

    assert isinstance(report, PlannedResult)
    assert fake.results[job.job_id]["plan"] == PLAN
    summary = summary_markdown(job, report, ctx)
    assert summary.startswith("## ✅ Stoneforge: octo/demo#44 planned\n")
    assert "| Plan | 3 tasks, 0 errors left |" in summary
