"""``scheduling.dispatch: stacked`` end to end on fakehub (the bot in-process, a runner the test
drives, real git; the runner's own workspace preparation makes the dependent's worktree): a
chain A <- B where B starts while A is in review, on A's branch, with its pull request based
there; A merges, B is retargeted to main and merges after A. And a rewritten A sends B back."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from runner.job import AUTHOR_EMAIL, AUTHOR_NAME
from runner.workspace import Workspaces
from tests.harness import World, git, open_world, write_files

STACKED = "version: 1\nscheduling:\n  dispatch: stacked\n"


def gated_ci(gate: Path) -> list[str]:
    """A green CI that holds each run until the test creates ``gate`` (at most a minute)."""
    code = (
        f"import pathlib, time\ng = pathlib.Path({str(gate)!r}); t = time.monotonic() + 60\n"
        "while not g.exists() and time.monotonic() < t: time.sleep(0.05)\n"
    )
    return [sys.executable, "-c", code]


def stacked_world(tmp_path: Path, ci: list[str] | None, config: str = STACKED) -> Any:
    files = {"README.md": "hello\n", ".github/stoneforge.yml": config}
    return open_world(tmp_path, bot=True, files=files, ci_command=ci, required=["ci"])


def work(world: World, ws: Workspaces, job: dict[str, Any], files: dict[str, str]) -> str:
    """What a runner does for an implement job: the worktree the runner prepares (on
    ``job["base"]``, fetched), a commit as the App, a push, the result; the head pushed."""
    prepared = ws.prepare(
        repo=job["repo"],
        clone_url=job["clone_url"],
        token=job["token"],
        branch=job["branch"],
        base=job["base"],
        base_sha=job["base_sha"],
    )
    tree = Path(prepared.path)
    write_files(tree, files)
    git(tree, "add", "-A")
    who = ["-c", f"user.name={AUTHOR_NAME}", "-c", f"user.email={AUTHOR_EMAIL}"]
    git(tree, *who, "commit", "-qm", job["title"])
    git(tree, "push", "-qf", "origin", f"HEAD:refs/heads/{job['branch']}", token=job["token"])
    head = git(tree, "rev-parse", "HEAD").strip()
    ws.release(tree)
    done = {"outcome": "completed", "reason": "success", "head_sha": head}
    answer = world.report(job, done)
    assert answer.status_code == 200, answer.text
    return head


def chain(world: World, ws: Workspaces) -> tuple[int, int, dict[str, Any], str]:
    """A and B (blocked by A), both labeled; A's job done and in review with its pull request;
    B's job claimed: (A, B, B's job, A's head)."""
    a = world.file("Add the greeting")
    b = world.file("Use the greeting")
    world.block(b["number"], a)
    world.label(a["number"])
    world.label(b["number"])
    job_a = world.wait_until(lambda: world.claim(wait_s=1), what="A handed out")
    assert job_a["issue"] == a["number"]
    head_a = work(world, ws, job_a, {"greeting.txt": "hello\n"})
    job_b = world.wait_until(lambda: world.claim(wait_s=1), what="B handed out on A's branch")
    assert job_b["issue"] == b["number"]
    assert world.tasks()[a["number"]]["state"] == "in_review"  # B did not wait for A's merge
    assert (job_b["base"], job_b["base_sha"]) == (job_a["branch"], head_a)
    return a["number"], b["number"], job_b, head_a


def pull_of(world: World, number: int) -> dict[str, Any]:
    pr = world.wait_until(lambda: world.tasks()[number]["pr"], what=f"#{number}'s pull request")
    return dict(world.get(f"/repos/{world.repo.full_name}/pulls/{pr}"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "delete_branch",
    [True, False],
    ids=["retargeted-by-github-on-delete", "retargeted-by-the-steward"],
)
def test_a_stacked_chain_starts_early_and_merges_in_order(
    tmp_path: Path, delete_branch: bool
) -> None:
    gate = tmp_path / "ci-may-finish"
    config = STACKED + f"merge:\n  delete_branch: {str(delete_branch).lower()}\n"
    with stacked_world(tmp_path, gated_ci(gate), config) as world:
        stacked_chain_merges(world, Workspaces(tmp_path / "runner"), gate)


def stacked_chain_merges(world: World, ws: Workspaces, gate: Path) -> None:
    a, b, job_b, head_a = chain(world, ws)
    head_b = work(world, ws, job_b, {"use.txt": "uses the greeting\n"})
    pull_b = pull_of(world, b)
    assert pull_b["base"]["ref"] == pull_of(world, a)["head"]["ref"]
    compare = world.get(f"/repos/{world.repo.full_name}/compare/{head_a}...{head_b}")
    assert (compare["status"], compare["ahead_by"]) == ("ahead", 1)  # B is A plus its commit
    gate.touch()  # CI reports now: A merges, then B

    merged = world.wait_until(
        lambda: (t := world.tasks())[a]["state"] == t[b]["state"] == "merged" and t,
        timeout=60,
        what="A and B merged",
    )
    assert merged[a]["merged_at"] < merged[b]["merged_at"]
    assert world.get(f"/repos/{world.repo.full_name}/pulls/{pull_b['number']}")["base"]["ref"] == (
        "main"
    )
    merges = [(e["pr"], e["base"]) for e in world.hub.events("merge")]  # fakehub's record
    assert merges == [(pull_of(world, a)["number"], "main"), (pull_b["number"], "main")]
    main = world.get(f"/repos/{world.repo.full_name}/contents/use.txt?ref=main")
    assert main["path"] == "use.txt"


@pytest.mark.slow
def test_a_rewritten_blocker_sends_its_stacked_task_back(tmp_path: Path) -> None:
    with stacked_world(tmp_path, None) as world:  # no CI: nothing merges meanwhile
        rewritten_blocker_sends_back(world, Workspaces(tmp_path / "runner"))


def rewritten_blocker_sends_back(world: World, ws: Workspaces) -> None:
    a, b, job_b, _ = chain(world, ws)
    work(world, ws, job_b, {"use.txt": "uses the greeting\n"})
    pull_of(world, b)
    # A is rewritten (as a rebase or a fresh start would): a new history on its branch
    branch_a = world.tasks()[a]["branch"]
    redo = world.clone("redo")
    new_head = world.push_branch(redo, "tmp", {"greeting.txt": "hello again\n"}, "redo A")
    git(redo, "push", "-qf", "origin", f"{new_head}:refs/heads/{branch_a}", token=world.bot_token)

    world.wait_until(lambda: world.tasks()[b]["state"] == "queued", timeout=30, what="B sent back")
    assert "rewritten" in (world.tasks()[b]["detail"] or "")
    again = world.wait_until(lambda: world.claim(wait_s=1), what="B handed out again")
    assert again["issue"] == b
    assert again["restart"] is True  # from a fresh base: the new head of A's branch
    assert (again["base"], again["base_sha"]) == (branch_a, new_head)
