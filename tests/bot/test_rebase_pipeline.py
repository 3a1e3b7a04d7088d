"""A pull request that conflicts with its base, end to end through fakehub: the steward sends a
rebase job (not a fresh agent run), the runner's rebase (``runner.rebase``, real git) meets the
conflict and reports its files; then an agent resolves them mid-rebase (``runner.resolve``), and
only when two resolutions fail does the task go back to an agent on the new base."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.core.protocol import (
    CompletedResult,
    FailedResult,
    JobResult,
    RebaseJob,
    ResolveConflictsJob,
)
from runner.git import RepoMirror
from runner.job import AUTHOR_EMAIL, AUTHOR_NAME, Control
from runner.rebase import run_rebase
from runner.resolve import run_resolve
from runner.tries import AgentTries
from tests.harness import World
from tests.harness.git import git, write_files


def commit_as_the_app(world: World, job: dict[str, Any], files: dict[str, str]) -> Path:
    """What a runner commits for ``job`` (as the App), on a clone of the base made now."""
    checkout = world.tmp / f"app-{job['job_id'].rsplit('@', 1)[1]}"
    token = job["token"]
    git(world.tmp, "clone", "-q", job["clone_url"], str(checkout), token=token)
    git(checkout, "checkout", "-q", "-b", job["branch"])
    write_files(checkout, files)
    git(checkout, "add", "-A")
    who = ["-c", f"user.name={AUTHOR_NAME}", "-c", f"user.email={AUTHOR_EMAIL}"]
    git(checkout, *who, "commit", "-qm", job["title"])
    return checkout


def push_and_report(job: dict[str, Any], checkout: Path, world: World) -> str:
    """Force-push the task's branch (as a runner does) and report the job completed."""
    ref = f"+HEAD:refs/heads/{job['branch']}"
    git(checkout, "push", "-q", "origin", ref, token=job["token"])
    head = git(checkout, "rev-parse", "HEAD").strip()
    done = {"outcome": "completed", "reason": "success", "head_sha": head}
    answer = world.report(job, done)
    assert answer.status_code == 200, answer.text
    return head


def resolve_here(world: World, claimed: dict[str, Any]) -> JobResult:
    """Run a claimed resolve_conflicts job as a runner would (real git, the script agent)."""
    job = ResolveConflictsJob.model_validate(claimed)
    mirror = RepoMirror(world.tmp / "runner", job.repo, job.clone_url)
    tries = AgentTries(
        work_dir=world.tmp / "runner", agent_override=None, agent_timeout_s=60,
        stall_timeout_s=60, test_timeout_s=60, rate_limit_pause_s=60, logs_kept=5,
        runner_token="r" * 16, pause=lambda agent, until: None, emit=lambda *a, **k: None,
    )  # fmt: skip
    return asyncio.run(run_resolve("w0", job, mirror, world.tmp / "runner", tries, Control(), None))


def conflicting_pull(world: World, body: str = "") -> tuple[int, dict[str, Any]]:
    """A task whose pull request conflicts with main (the same line of shared.txt), and the
    rebase job the steward sends for it, run with real git: it met the conflict and said so."""
    issue = world.file("Greet in the shared file", body)
    world.label(issue["number"])
    job = world.wait_until(lambda: world.claim(wait_s=1), what="the task to be handed out")
    checkout = commit_as_the_app(world, job, {"shared.txt": "hello from the task\n"})
    world.push_main({"shared.txt": "hello from main\n"})  # lands first: the same lines
    head = push_and_report(job, checkout, world)

    rebase = world.wait_until(lambda: world.claim(wait_s=1), what="a rebase job")
    assert (rebase["kind"], rebase["expected_head"]) == ("rebase", head)
    assert world.tasks()[issue["number"]]["pr"] == rebase["pull_number"]
    parsed = RebaseJob.model_validate(rebase)
    mirror = RepoMirror(world.tmp / "runner", parsed.repo, parsed.clone_url)
    result = asyncio.run(run_rebase(parsed, mirror, world.tmp / "runner", Control()))
    assert isinstance(result, FailedResult)
    assert (result.reason.value, result.detail) == ("rebase_conflict", "shared.txt")
    answer = world.report(rebase, result.model_dump(mode="json", exclude={"branch"}))
    assert answer.status_code == 200, answer.text
    return issue["number"], rebase


@pytest.mark.slow
def test_a_conflict_goes_to_resolution_twice_and_only_then_to_a_fresh_agent_run(
    world: World,
) -> None:
    number, rebase = conflicting_pull(world)
    for round_ in (1, 2):
        resolve = world.wait_until(lambda: world.claim(wait_s=1), what="a resolve job")
        assert resolve["kind"] == "resolve_conflicts"
        assert (resolve["conflicts"], resolve["round"]) == (["shared.txt"], round_)
        assert resolve["expected_head"] == rebase["expected_head"]
        failed = {"outcome": "failed", "reason": "resolve_failed", "detail": "shared.txt"}
        answer = world.report(resolve, failed)
        assert answer.status_code == 200, answer.text

    again = world.wait_until(lambda: world.claim(wait_s=1), what="a fresh agent run")
    assert (again["kind"], again["restart"]) == ("implement", True)
    redone = commit_as_the_app(world, again, {"shared.txt": "hello from main\nand the task\n"})
    push_and_report(again, redone, world)
    assert world.wait_until(
        lambda: world.tasks()[number]["state"] == "merged", what="the task merged"
    )
    assert [e for e in world.hub.events("merge") if e["pr"] == rebase["pull_number"]]


@pytest.mark.slow
def test_an_agent_resolves_the_conflict_and_the_rebased_pull_request_merges(
    world: World,
) -> None:
    # The script agent, given no resolution, keeps both sides (the base's line first).
    resolved = "hello from main\nhello from the task\n"
    script = {"edits": [{"path": "shared.txt", "write": "hello from the task\n"}], "summary": "hi"}
    body = f"Greet.\n\n```stoneforge-script\n{json.dumps(script)}\n```\n"
    number, rebase = conflicting_pull(world, body)

    claimed = world.wait_until(lambda: world.claim(wait_s=1), what="a resolve job")
    assert claimed["kind"] == "resolve_conflicts"
    job = ResolveConflictsJob.model_validate(claimed)
    result = resolve_here(world, claimed)
    assert isinstance(result, CompletedResult), result
    answer = world.report(claimed, result.model_dump(mode="json", exclude={"branch"}))
    assert answer.status_code == 200, answer.text

    assert world.wait_until(
        lambda: world.tasks()[number]["state"] == "merged", what="the task merged"
    )
    merged = [e for e in world.hub.events("merge") if e["pr"] == rebase["pull_number"]]
    assert merged
    checkout = world.tmp / "after"
    login, token = world.maintainer.login, world.lead_token
    git(world.tmp, "clone", "-q", job.clone_url, str(checkout), token=token, login=login)
    assert (checkout / "shared.txt").read_text() == resolved


@pytest.mark.slow
def test_a_branch_with_someone_elses_commit_is_never_rewritten(world: World) -> None:
    issue = world.file("Greet in the shared file")
    world.label(issue["number"])
    job = world.wait_until(lambda: world.claim(wait_s=1), what="the task to be handed out")
    checkout = commit_as_the_app(world, job, {"shared.txt": "hello from the task\n"})
    write_files(checkout, {"notes.txt": "a person's fix\n"})
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "a person's commit")  # author "Agent": not the App
    world.push_main({"shared.txt": "hello from main\n"})
    head = push_and_report(job, checkout, world)

    rebase = world.wait_until(lambda: world.claim(wait_s=1), what="a rebase job")
    parsed = RebaseJob.model_validate(rebase)
    mirror = RepoMirror(world.tmp / "runner", parsed.repo, parsed.clone_url)
    result = asyncio.run(run_rebase(parsed, mirror, world.tmp / "runner", Control()))
    assert isinstance(result, FailedResult)
    assert result.reason.value == "branch_moved"
    answer = world.report(rebase, result.model_dump(mode="json", exclude={"branch"}))
    assert answer.status_code == 200, answer.text

    pr = rebase["pull_number"]
    said = world.wait_until(
        lambda: [c for c in world.comments(pr) if "did not rebase it" in c], what="a comment"
    )
    assert "by Agent" in said[0]
    world.settle()
    task = world.tasks()[issue["number"]]
    assert (task["state"], task["head_sha"]) == ("in_review", head)
    assert world.claim(wait_s=1) is None, "no second rebase of the same head"
    assert world.hub.events("merge") == []
