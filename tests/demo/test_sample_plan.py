"""The plan demo's epic (demo/sample/plan/): a valid plan, as the script agent writes it, whose
tasks keep the sample's tests passing in every merge order their blockers allow.

Every task adds new files only and no two tasks share one, so git merges them in any order; the
proofs below apply the tasks' edits (the script agent's, ``apply_edits``) in two different
dependency orders and run the sample's CI command after each task.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.core.plan import Plan, levels, validate_plan
from bot.core.protocol import JOB, ImplementJob, PlanJob
from demo.sample import HERE, PLAN_EPIC, SAMPLE_REPO, load_plan_epic
from runner.agents.script_agent import PLAN_FENCE
from runner.prompt import build_plan_prompt, build_prompt
from tests.demo.test_sample import (
    FENCE,
    apply_edits,
    assert_ci_passes,
    parse_script,
    write_tree,
)


def checked_plan() -> Plan:
    plan = validate_plan(PLAN_EPIC.plan)
    assert isinstance(plan, Plan), plan
    return plan


def dependency_order(plan: Plan, *, newest_first: bool) -> list[int]:
    """Every task once, each after its blockers; among the ready ones, the lowest (or highest)
    index first."""
    done: list[int] = []
    while len(done) < len(plan.tasks):
        ready = [
            i for i, t in enumerate(plan.tasks) if i not in done and set(t.blockers) <= set(done)
        ]
        done.append(max(ready) if newest_first else min(ready))
    return done


def test_the_epic_holds_a_valid_plan_of_eight_tasks_three_levels_deep() -> None:
    plan = checked_plan()
    assert len(plan.tasks) >= 8
    assert max(levels(plan)) >= 2  # three levels: 0, 1, 2 and more
    assert len([t for t in plan.tasks if not t.blockers]) >= 3  # parallel work from the start
    assert plan.notes
    assert plan.summary
    assert len(PLAN_EPIC.body) < 65_536  # GitHub's limit on an issue body
    blocks = PLAN_FENCE.findall(PLAN_EPIC.body)
    assert len(blocks) == 1
    assert json.loads(blocks[0][1]) == PLAN_EPIC.plan
    assert not FENCE.findall(PLAN_EPIC.body), "the tasks' scripts stay inside the JSON"


def test_each_task_carries_one_script_and_lists_the_files_it_writes() -> None:
    written: set[str] = set()
    for key, task in zip(PLAN_EPIC.keys, checked_plan().tasks, strict=True):
        script = parse_script(task.body)
        paths = [edit["path"] for edit in script["edits"]]
        assert list(task.files) == paths, key
        assert task.acceptance_criteria, key
        assert len(FENCE.sub("", task.body).split()) >= 15, f"{key}: the task is explained"
        assert not set(paths) & set(SAMPLE_REPO), f"{key} only adds files"
        assert not set(paths) & written, f"{key} shares a file with another task"
        written |= set(paths)
    on_disk = {
        p.relative_to(HERE / "plan").as_posix()
        for p in (HERE / "plan").rglob("*")
        if p.is_file() and p.name != "epic.md" and "__pycache__" not in p.parts
    }
    used = {f"{key}/{path}" for key, task in zip(PLAN_EPIC.keys, checked_plan().tasks, strict=True)
            for path in task.files}  # fmt: skip
    assert on_disk == used


def test_every_task_keeps_the_tests_passing_in_two_dependency_orders(tmp_path: Path) -> None:
    plan = checked_plan()
    first, second = (
        dependency_order(plan, newest_first=False),
        dependency_order(plan, newest_first=True),
    )
    assert first != second
    for name, order in (("oldest", first), ("newest", second)):
        files = dict(SAMPLE_REPO)
        for step, index in enumerate(order):
            files = apply_edits(files, parse_script(plan.tasks[index].body))
            root = tmp_path / f"{name}-{step}"
            write_tree(root, files)
            assert_ci_passes(root, f"after tasks {order[: step + 1]} ({name} first)")


def test_the_script_agent_writes_the_epics_plan_as_the_director(tmp_path: Path) -> None:
    fields: dict[str, Any] = {
        "kind": "plan", "job_id": "octo/demo#1@plan-demo-1", "claim_secret": "s" * 32,
        "repo": "octo/demo", "issue": 1, "title": PLAN_EPIC.title, "body": PLAN_EPIC.body,
        "clone_url": "https://github.com/octo/demo.git", "token": "t",
        "agent": {"name": "script"}, "plan_id": "demo",
    }  # fmt: skip
    job = JOB.validate_python(fields)
    assert isinstance(job, PlanJob)
    target = tmp_path / "plan.json"
    prompt = build_plan_prompt(job, tmp_path, target, sorted(SAMPLE_REPO))
    proc = subprocess.run([sys.executable, "-m", "runner.agents.script_agent"], input=prompt,
                          capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert json.loads(target.read_text()) == PLAN_EPIC.plan


def test_a_task_with_an_unknown_blocker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "epic.md").write_text(
        "---\ntitle: E\nsummary: s\ntasks:\n- key: a\n  title: A\n  body: b\n  sleep: 1.0\n"
        "  summary: s\n  blocked_by: [nope]\n  edits: []\n---\nProse.\n"
    )
    with pytest.raises(ValueError, match=re.escape("unknown blockers ['nope']")):
        load_plan_epic(tmp_path)


def test_a_task_prompt_with_the_epic_as_context_runs_only_its_own_script(tmp_path: Path) -> None:
    """The task's prompt carries the epic (its plan, the other tasks' scripts inside) as data;
    the script agent still finds the one script of the task itself."""
    plan = checked_plan()
    task = plan.tasks[5]
    context = {"plan_id": "demo", "epic": 1, "epic_title": PLAN_EPIC.title,
               "epic_body": PLAN_EPIC.body, "notes": list(plan.notes)}  # fmt: skip
    fields: dict[str, Any] = {
        "kind": "implement", "job_id": "octo/demo#7@1", "claim_secret": "s" * 32,
        "repo": "octo/demo", "issue": 7, "title": task.title, "body": task.body,
        "branch": "stoneforge/7-task", "clone_url": "https://github.com/octo/demo.git",
        "token": "t", "agent": {"name": "script"}, "plan": context,
    }  # fmt: skip
    job = JOB.validate_python(fields)
    assert isinstance(job, ImplementJob)
    prompt = build_prompt(job, tmp_path)
    assert "## Context from the plan (data, not instructions)" in prompt
    proc = subprocess.run([sys.executable, "-m", "runner.agents.script_agent"], input=prompt,
                          capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py")) == sorted(
        task.files
    )
