"""Review jobs (``runner.review``) with real git, a real runner and the script agent: the head is
checked out, the agent is told the issue, the diff and its round, its verdict file is read and
checked (line comments GitHub could not place folded into the body), and nothing is pushed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

import runner.agents
from runner.agents.base import Invocation, RunRequest
from runner.agents.script import ScriptAdapter
from runner.review import diff_lines
from tests.harness.runner_bot import Bot, job, run_until
from tests.runner.test_rebase import commit, remote, sh
from tests.runner.test_resolve import make_runner

BRANCH = "stoneforge/5-task"
JOB_ID = "octo/demo#5@6"

CHANGES = {
    "event": "REQUEST_CHANGES",
    "body": "The endpoint is not paged, as the issue asks.",
    "comments": [
        {"path": "app/api.py", "line": 2, "body": "Take `page` here."},
        {"path": "README.md", "line": 1, "body": "Say so in the README too."},  # not changed
    ],
}
APPROVE = {"event": "APPROVE", "body": "Paged as asked."}


class RecordingAdapter(ScriptAdapter):
    """The script agent, keeping each prompt and review file it is given."""

    name = "recording"
    prompts: ClassVar[list[str]] = []

    def build(self, req: RunRequest) -> Invocation:
        self.prompts.append(req.prompt)
        return super().build(req)


def branch_with_api(origin: Path, tmp_path: Path) -> tuple[Path, str]:
    clone = tmp_path / "clone"
    sh(tmp_path, "clone", "--quiet", str(origin), str(clone))
    sh(clone, "checkout", "--quiet", "-b", BRANCH)
    (clone / "app" / "api.py").write_text("def users():\n    return []\n")
    sh(clone, "add", "app/api.py")
    sh(clone, "commit", "--quiet", "-m", "add the users endpoint")
    sh(clone, "push", "--quiet", "origin", BRANCH)
    return clone, sh(clone, "rev-parse", "HEAD")


def review_job(origin: Path, head: str, verdict: Any, round_: int = 1) -> dict[str, Any]:
    fields = job(origin, 5, {}, kind="review", job_id=JOB_ID, branch=BRANCH, head=head,
                 pull_number=12, round=round_, max_rounds=2,
                 agent={"name": "recording", "model": None})  # fmt: skip
    fields["body"] = (
        "Serve the users.\n\n## Acceptance criteria\n\n- [ ] the list is paged\n\n"
        f"```stoneforge-review\n{json.dumps(verdict)}\n```\n"
    )
    return fields


@pytest.fixture(autouse=True)
def recording(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.agents._FACTORIES, "recording", RecordingAdapter)
    monkeypatch.setattr(RecordingAdapter, "prompts", [])


async def test_the_agent_requests_changes_with_a_line_comment_and_nothing_is_pushed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    clone, head = branch_with_api(origin, tmp_path)
    fake.jobs = [review_job(origin, head, {"rounds": [CHANGES, APPROVE]})]
    await run_until(make_runner(url, tmp_path), fake, 1)

    result = fake.results[JOB_ID]
    assert (result["outcome"], result["event"], result["head_sha"]) == (
        "reviewed", "REQUEST_CHANGES", head,
    ), result  # fmt: skip
    assert result["branch"] == BRANCH
    assert result["comments"] == [{"path": "app/api.py", "line": 2, "body": "Take `page` here."}]
    # GitHub could not place the README comment (README.md is not in the diff): in the body
    assert result["body"] == (
        "The endpoint is not paged, as the issue asks.\n\n"
        "- `README.md:1`: Say so in the README too."
    )
    assert remote(clone, BRANCH) == head, "a review pushes nothing"
    (prompt,) = RecordingAdapter.prompts
    assert "Review round: 1 of 2" in prompt
    assert "- [ ] the list is paged" in prompt
    assert "+def users():" in prompt  # the diff against main
    assert "- `app/api.py`" in prompt
    assert "Review file: `" in prompt
    assert not list((tmp_path / "work" / "review").glob("*")), "the worktree is gone"
    assert not list((tmp_path / "work" / "reviews").glob("*")), "and the verdict's folder"


async def test_the_second_round_approves(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    _, head = branch_with_api(origin, tmp_path)
    fake.jobs = [review_job(origin, head, {"rounds": [CHANGES, APPROVE]}, round_=2)]
    await run_until(make_runner(url, tmp_path), fake, 1)
    result = fake.results[JOB_ID]
    assert (result["outcome"], result["event"], result["body"]) == (
        "reviewed", "APPROVE", "Paged as asked."
    )  # fmt: skip
    assert "(the last: changes you request now go to a person" in RecordingAdapter.prompts[0]


async def test_an_invalid_verdict_is_retried_once_then_fails(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    _, head = branch_with_api(origin, tmp_path)
    fake.jobs = [review_job(origin, head, {"event": "LGTM"})]
    await run_until(make_runner(url, tmp_path), fake, 1)
    result = fake.results[JOB_ID]
    assert (result["outcome"], result["reason"]) == ("failed", "no_changes"), result
    assert "'event' must be one of APPROVE, REQUEST_CHANGES" in result["detail"]
    assert [t["outcome"] for t in result["attempt_log"]] == ["failed", "failed"]
    assert "## Your verdict was not valid" in RecordingAdapter.prompts[1]


async def test_a_branch_that_moved_is_not_reviewed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    clone, head = branch_with_api(origin, tmp_path)
    commit(clone, BRANCH, "app/api.py", "def users():\n    return ['rita']\n")
    fake.jobs = [review_job(origin, head, APPROVE)]
    await run_until(make_runner(url, tmp_path), fake, 1)
    result = fake.results[JOB_ID]
    assert (result["outcome"], result["reason"]) == ("failed", "branch_moved"), result
    assert RecordingAdapter.prompts == []


def test_diff_lines_are_the_new_sides_added_and_context_lines() -> None:
    diff = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,4 @@\n x = 1\n-y = 2\n"
        "+y = 3\n+z = 4\n w = 5\n@@ -10,2 +11,2 @@\n-p\n+q\n r\n"
        "diff --git a/gone.py b/gone.py\n--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
    )
    assert diff_lines(diff) == {"a.py": {1, 2, 3, 4, 11, 12}}
