"""fakehub's Git refs and merges endpoints, and pull requests merged by a push: the primitives a
merge queue lands a tested commit with (issue 13, section 5), in GitHub's shapes and codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from fakehub.server import FakeHub
from tests.fakehub.conftest import FULL, make_world
from tests.fakehub.openapi import Spec
from tests.harness import Receiver, World, git


def _push(w: World, branch: str, files: dict[str, str]) -> str:
    work = w.tmp / "clone"
    if not work.exists():
        git(w.tmp, "clone", "-q", f"{w.hub.url}/{FULL}.git", str(work), token=w.bot_token)
        git(work, "config", "user.name", "Agent")
        git(work, "config", "user.email", "agent@example.com")
    git(work, "checkout", "-q", "origin/main")
    return w.push_branch(work, branch, files, f"work on {branch}")


def _checked(spec: Spec, method: str, path: str, resp: Any) -> Any:
    body = resp.json() if resp.content else None
    assert spec.validate_response(method, path, resp.status_code, body) == [], resp.text
    return body


def test_refs_are_created_and_moved_only_forward_unless_forced(world: World, spec: Spec) -> None:
    main = world.hub.store.ref_sha(FULL, "main")
    assert main is not None
    side = _push(world, "side", {"side.txt": "x\n"})
    with world.client() as bot:
        made = bot.post(f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/q/1", "sha": main})
        assert made.status_code == 201
        assert _checked(spec, "POST", "/repos/o/r/git/refs", made)["object"]["sha"] == main
        again = bot.post(f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/q/1", "sha": main})
        assert (again.status_code, again.json()["message"]) == (422, "Reference already exists")
        bad = bot.post(f"/repos/{FULL}/git/refs", json={"ref": "q2", "sha": main})
        assert bad.status_code == 422
        unknown = bot.post(
            f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/q/2", "sha": "f" * 40}
        )
        assert (unknown.status_code, unknown.json()["message"]) == (422, "Object does not exist")

        forward = bot.patch(f"/repos/{FULL}/git/refs/heads/q/1", json={"sha": side, "force": False})
        assert forward.status_code == 200
        _checked(spec, "PATCH", "/repos/o/r/git/refs/heads/q/1", forward)
        back = bot.patch(f"/repos/{FULL}/git/refs/heads/q/1", json={"sha": main})
        assert (back.status_code, back.json()["message"]) == (422, "Update is not a fast forward")
        assert world.hub.store.ref_sha(FULL, "q/1") == side
        forced = bot.patch(f"/repos/{FULL}/git/refs/heads/q/1", json={"sha": main, "force": True})
        assert forced.status_code == 200
        assert world.hub.store.ref_sha(FULL, "q/1") == main
        missing = bot.patch(f"/repos/{FULL}/git/refs/heads/nope", json={"sha": main})
        assert (missing.status_code, missing.json()["message"]) == (422, "Reference does not exist")
    pushes = [(e["ref"], e["before"], e["after"]) for e in world.hub.events("push")]
    assert ("refs/heads/q/1", main, side) in pushes
    assert ("refs/heads/q/1", side, main) in pushes


def test_merges_make_a_merge_commit_or_say_why_not(world: World, spec: Spec) -> None:
    main = world.hub.store.ref_sha(FULL, "main")
    a = _push(world, "a", {"a.txt": "a\n", "README.md": "# from a\n"})
    b = _push(world, "b", {"README.md": "# from b\n"})
    with world.client() as bot:
        bot.post(f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/cand", "sha": main})
        made = bot.post(
            f"/repos/{FULL}/merges", json={"base": "cand", "head": a, "commit_message": "A in"}
        )
        assert made.status_code == 201
        body = _checked(spec, "POST", "/repos/o/r/merges", made)
        assert [p["sha"] for p in body["parents"]] == [main, a]
        assert body["commit"]["message"] == "A in"
        assert world.hub.store.ref_sha(FULL, "cand") == body["sha"]
        same = bot.post(f"/repos/{FULL}/merges", json={"base": "cand", "head": a})
        assert same.status_code == 204
        clash = bot.post(f"/repos/{FULL}/merges", json={"base": "cand", "head": b})
        assert (clash.status_code, clash.json()["message"]) == (409, "Merge conflict")
        assert world.hub.store.ref_sha(FULL, "cand") == body["sha"], "unchanged on conflict"
        nobase = bot.post(f"/repos/{FULL}/merges", json={"base": "nope", "head": a})
        assert nobase.status_code == 404
        nohead = bot.post(f"/repos/{FULL}/merges", json={"base": "cand", "head": "nope"})
        assert nohead.status_code == 404


def test_a_push_that_brings_a_pull_requests_head_into_its_base_merges_it(
    world: World, receiver: Receiver
) -> None:
    with world.client(world.maintainer.token) as lead:
        issue = lead.post(f"/repos/{FULL}/issues", json={"title": "Task"}).json()
    main = world.hub.store.ref_sha(FULL, "main")
    head = _push(world, "feature", {"f.txt": "f\n"})
    other = _push(world, "other", {"o.txt": "o\n"})
    with world.client() as bot:
        pr = bot.post(
            f"/repos/{FULL}/pulls",
            json={
                "title": "F",
                "head": "feature",
                "base": "main",
                "body": f"Closes #{issue['number']}",
            },
        ).json()
        left = bot.post(
            f"/repos/{FULL}/pulls", json={"title": "O", "head": "other", "base": "main"}
        ).json()
        bot.post(f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/cand", "sha": main})
        cand = bot.post(f"/repos/{FULL}/merges", json={"base": "cand", "head": head}).json()["sha"]
        landed = bot.patch(f"/repos/{FULL}/git/refs/heads/main", json={"sha": cand, "force": False})
        assert landed.status_code == 200
        merged = bot.get(f"/repos/{FULL}/pulls/{pr['number']}").json()
        untouched = bot.get(f"/repos/{FULL}/pulls/{left['number']}").json()
        assert bot.get(f"/repos/{FULL}/pulls/{pr['number']}/merge").status_code == 204
        closed_issue = bot.get(f"/repos/{FULL}/issues/{issue['number']}").json()
    assert (merged["state"], merged["merged"], merged["merge_commit_sha"]) == ("closed", True, cand)
    assert merged["merged_by"]["login"] == world.app.bot.login
    assert (untouched["state"], untouched["merged"]) == ("open", False)
    assert closed_issue["state"] == "closed"
    hook = receiver.wait_for(
        lambda h: (
            h.event == "pull_request"
            and h.payload["action"] == "closed"
            and h.payload["number"] == pr["number"]
        )
    )
    assert hook.payload["pull_request"]["merged"] is True
    (record,) = world.hub.events("merged_by_push")
    assert (record["pr"], record["head_sha"], record["pushed"]) == (pr["number"], head, cand)
    assert other not in (record["head_sha"], record["merge_sha"])


def test_ci_runs_on_pushes_to_the_branches_it_is_configured_for_and_can_report_a_status(
    hub: FakeHub, receiver: Receiver, tmp_path: Path
) -> None:
    ci = [sys.executable, "-c", "import pathlib, sys; sys.exit(pathlib.Path('bad').exists())"]
    world = make_world(hub, receiver, tmp_path, ci_command=ci)
    world.repo.ci_push = ["queue/*"]
    world.repo.ci_reports = "status"
    main = hub.store.ref_sha(FULL, "main")
    bad = _push(world, "plain", {"bad": "x\n"})  # not a CI branch: no run
    with world.client() as bot:
        bot.post(f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/queue/1", "sha": main})
        bot.post(f"/repos/{FULL}/git/refs", json={"ref": "refs/heads/queue/2", "sha": bad})
    done = world.wait_until(
        lambda: len(hub.events("check_completed")) == 2 and hub.events("check_completed"),
        what="two CI runs",
    )
    assert {(e["sha"], e["conclusion"]) for e in done} == {(main, "success"), (bad, "failure")}
    with world.client() as bot:
        combined = bot.get(f"/repos/{FULL}/commits/{bad}/status").json()
        runs = bot.get(f"/repos/{FULL}/commits/{bad}/check-runs").json()
    assert [(s["context"], s["state"]) for s in combined["statuses"]] == [("ci", "failure")]
    assert runs["total_count"] == 0, "reported as a commit status, not a check run"
