"""A red required check made by GitHub Actions is re-run through the Actions API
(``rerun-failed-jobs`` on its workflow run), not by rerequesting the check run, which GitHub
refuses for another App's run (issue 13, section 2)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.harness import open_world, wait_until

pytestmark = pytest.mark.slow

GREEN = [sys.executable, "-c", "print('1 passed')"]


def test_a_red_actions_job_is_re_run_with_its_workflow_runs_failed_jobs(tmp_path: Path) -> None:
    with open_world(
        tmp_path, bot=True, ci_command=GREEN, required=["build"], bot_env={"steward_refresh_s": 1.0}
    ) as world:
        hub, repo = world.hub, world.repo
        with hub.state.lock:
            owner = hub.state.user("github") or hub.state.add_user("github", "Organization")
            actions = hub.state.add_app(
                slug="github-actions",
                owner=owner,
                webhook_url=None,
                webhook_secret="",
                events=[],
                permissions={"checks": "write", "actions": "write"},
                name="GitHub Actions",
            )
        issue = world.file_labeled("Build it")
        job = wait_until(lambda: world.claim(wait_s=1), what="the task handed out")
        world.work(job, {"build.txt": "x\n"})
        sha = world.wait_until(lambda: world.tasks()[issue]["head_sha"], what="the head")
        # The workflow run 77's job "build" fails (playing GitHub Actions).
        hub.hub.create_check_run(
            repo,
            actions,
            name="build",
            head_sha=sha,
            conclusion="failure",
            details_url=f"{hub.url}/{repo.full_name}/actions/runs/77/job/1",
            output={"title": "build", "summary": "1 failed"},
        )
        world.wait_until(lambda: world.tasks()[issue]["state"] == "merged", what="merged")
        (rerun,) = hub.events("rerun_failed_jobs")
        assert (rerun["run_id"], rerun["jobs"]) == (77, ["build"])
        assert hub.events("check_rerequested") == [], "not the check-run rerequest"
        builds = [e["conclusion"] for e in hub.events("check_completed") if e["name"] == "build"]
        assert builds == ["failure", "success"]
        (merge,) = hub.events("merge")
        assert merge["checks"]["build"] == "success"
        assert [c for c in world.comments(merge["pr"]) if "recorded as flaky" in c]
