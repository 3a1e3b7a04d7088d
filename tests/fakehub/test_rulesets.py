"""Repository rulesets in fakehub: created by an admin, listed, their active rules on a branch
in GitHub's shape, and their required checks holding a pull request's merge like classic
branch protection's."""

from __future__ import annotations

from typing import Any

from tests.fakehub.conftest import FULL
from tests.fakehub.openapi import Spec
from tests.harness import World, git


def _ruleset(
    name: str, contexts: list[str], *, enforcement: str = "active", include: str = "~DEFAULT_BRANCH"
) -> dict[str, Any]:
    return {
        "name": name,
        "target": "branch",
        "enforcement": enforcement,
        "conditions": {"ref_name": {"include": [include], "exclude": []}},
        "rules": [
            {
                "type": "required_status_checks",
                "parameters": {
                    "strict_required_status_checks_policy": False,
                    "required_status_checks": [{"context": c} for c in contexts],
                },
            },
            {"type": "non_fast_forward"},
        ],
    }


def test_active_rules_on_a_branch_in_githubs_shape(world: World, spec: Spec) -> None:
    with world.api() as lead:
        created = lead.post(f"/repos/{FULL}/rulesets", json=_ruleset("gate", ["lint"]))
        assert created.status_code == 201, created.text
        lead.post(
            f"/repos/{FULL}/rulesets",
            json=_ruleset("trial", ["slow"], enforcement="evaluate", include="refs/heads/main"),
        ).raise_for_status()
        listed = lead.get(f"/repos/{FULL}/rulesets")
    with world.client() as bot:  # the App reads rules with metadata: read
        rules = bot.get(f"/repos/{FULL}/rules/branches/main")
        other = bot.get(f"/repos/{FULL}/rules/branches/feature")
    assert [r["name"] for r in listed.json()] == ["gate", "trial"]
    assert rules.status_code == 200
    assert [r["type"] for r in rules.json()] == ["required_status_checks", "non_fast_forward"]
    first = rules.json()[0]
    assert first["parameters"]["required_status_checks"] == [{"context": "lint"}]
    assert first["ruleset_id"] == created.json()["id"]
    assert first["ruleset_source_type"] == "Repository"
    assert other.json() == [], "~DEFAULT_BRANCH leaves other branches out"
    for method, path, resp in (
        ("POST", f"/repos/{FULL}/rulesets", created),
        ("GET", f"/repos/{FULL}/rulesets", listed),
        ("GET", f"/repos/{FULL}/rules/branches/main", rules),
    ):
        assert spec.validate_response(method, path, resp.status_code, resp.json()) == []


def test_only_an_admin_creates_a_ruleset(world: World) -> None:
    world.hub.create_user("dev")
    world.hub.set_permission(FULL, "dev", "write")
    dev = world.hub.state.user("dev")
    assert dev is not None
    with world.api(dev.token) as api:
        r = api.post(f"/repos/{FULL}/rulesets", json=_ruleset("mine", ["x"]))
    assert r.status_code == 403
    assert world.repo.rulesets == []


def test_a_rulesets_required_check_holds_the_merge_until_green(world: World) -> None:
    with world.api() as lead:
        lead.post(f"/repos/{FULL}/rulesets", json=_ruleset("gate", ["lint"])).raise_for_status()
    work = world.clone("rules")
    sha = world.push_branch(work, "sf/rules", {"x.py": "x = 1\n"}, "work")
    git(work, "checkout", "-q", "main")
    with world.client() as bot:
        number = bot.post(
            f"/repos/{FULL}/pulls", json={"title": "t", "head": "sf/rules", "base": "main"}
        ).json()["number"]
        assert bot.get(f"/repos/{FULL}/pulls/{number}").json()["mergeable_state"] == "blocked"
        refused = bot.put(f"/repos/{FULL}/pulls/{number}/merge", json={"sha": sha})
        assert refused.status_code == 405
        assert refused.json()["message"] == 'Required status check "lint" is expected.'
        bot.post(
            f"/repos/{FULL}/statuses/{sha}", json={"state": "success", "context": "lint"}
        ).raise_for_status()
        assert bot.get(f"/repos/{FULL}/pulls/{number}").json()["mergeable_state"] == "clean"
        merged = bot.put(f"/repos/{FULL}/pulls/{number}/merge", json={"sha": sha})
    assert merged.status_code == 200, merged.text


def test_a_pull_request_rule_holds_the_merge_until_a_writer_approves(world: World) -> None:
    rule = {"type": "pull_request", "parameters": {"required_approving_review_count": 1}}
    body = {**_ruleset("reviews", []), "rules": [rule]}
    world.hub.create_user("guest")
    guest = world.hub.state.user("guest")
    assert guest is not None
    with world.api() as lead:
        lead.post(f"/repos/{FULL}/rulesets", json=body).raise_for_status()
    work = world.clone("reviewed")
    world.push_branch(work, "sf/reviewed", {"y.py": "y = 1\n"}, "work")
    with world.client() as bot:
        number = bot.post(
            f"/repos/{FULL}/pulls", json={"title": "t", "head": "sf/reviewed", "base": "main"}
        ).json()["number"]
    reviews = f"/repos/{FULL}/pulls/{number}/reviews"
    with world.api(guest.token) as api:  # not a writer: does not count
        api.post(reviews, json={"event": "APPROVE"}).raise_for_status()
    with world.client() as bot:
        assert bot.get(f"/repos/{FULL}/pulls/{number}").json()["mergeable_state"] == "blocked"
    with world.api() as lead:
        lead.post(reviews, json={"event": "APPROVE"}).raise_for_status()
    with world.client() as bot:
        assert bot.get(f"/repos/{FULL}/pulls/{number}").json()["mergeable_state"] == "clean"
