"""A base whose ruleset requires code owners' review (issue 13, section 4): the steward waits,
saying for whom, until an owner of each changed file has approved; another writer's approval
does not do. fakehub holds the merge the same way (``blocked``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakehub.records import CheckRun
from tests.harness import open_world

pytestmark = pytest.mark.slow

RULESET = {
    "name": "owners",
    "target": "branch",
    "enforcement": "active",
    "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
    "rules": [
        {
            "type": "pull_request",
            "parameters": {
                "required_approving_review_count": 0,
                "require_code_owner_review": True,
                "dismiss_stale_reviews_on_push": False,
                "require_last_push_approval": False,
                "required_review_thread_resolution": False,
            },
        }
    ],
}


def test_a_changed_file_waits_for_its_code_owner(tmp_path: Path) -> None:
    with open_world(tmp_path, bot=True, bot_env={"steward_refresh_s": 1.0}) as world:
        full = world.repo.full_name
        for login in ("owner1", "writer"):
            world.hub.create_user(login)
            world.hub.set_permission(full, login, "write")
        world.push_main({".github/CODEOWNERS": "*.txt @owner1 @org/docs\n/app/ @writer\n"})
        with world.api() as lead:
            lead.post(f"/repos/{full}/rulesets", json=RULESET).raise_for_status()
        issue = world.file_labeled("Add the greeting")
        job = world.wait_until(lambda: world.claim(wait_s=1), what="the task handed out")
        world.work(job, {"greeting.txt": "hi\n"})
        task = world.wait_until(lambda: world.tasks()[issue].get("pr") and world.tasks()[issue])
        sha = task["head_sha"]

        def steward_check() -> CheckRun | None:
            runs = [r for r in world.hub.state.runs_for(world.repo, sha) if r.name == "stoneforge"]
            return runs[0] if runs else None

        waiting = world.wait_until(
            lambda: (run := steward_check()) and "code owner" in run.output["title"] and run,
            what="the stoneforge check naming the code owner",
        )
        assert waiting.output["title"] == (
            "waiting for a code owner's approval: greeting.txt (@owner1)"
        )
        reviews = f"/repos/{full}/pulls/{task['pr']}/reviews"
        writer, owner = (world.hub.state.user(u) for u in ("writer", "owner1"))
        assert writer is not None
        assert owner is not None
        with world.api(writer.token) as api:  # a writer, but not this file's owner
            api.post(reviews, json={"event": "APPROVE"}).raise_for_status()
        world.settle()
        pull = world.get(f"/repos/{full}/pulls/{task['pr']}")
        assert pull["mergeable_state"] == "blocked", "fakehub holds it as GitHub does"
        assert world.tasks()[issue]["state"] == "in_review"
        assert world.hub.events("merge") == []

        with world.api(owner.token) as api:
            api.post(reviews, json={"event": "APPROVE"}).raise_for_status()
        world.wait_until(lambda: world.tasks()[issue]["state"] == "merged", what="merged")
        assert [m["pr"] for m in world.hub.events("merge")] == [task["pr"]]
        assert world.hub.events("merge_refused") == []
