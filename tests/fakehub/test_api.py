"""Behaviour of fakehub's REST API: authentication, scopes, dependencies, merging, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakehub.server import FakeHub
from tests.fakehub.conftest import FULL, ORG, REPO, SECRET, make_world
from tests.harness import Receiver, World, flaky_ci, git

FAIL = [sys.executable, "-c", "import sys; print('boom'); sys.exit(1)"]
PASS = [sys.executable, "-c", "print('ok')"]


def _other_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _get_app(w: World, token: str) -> httpx.Response:
    return httpx.get(f"{w.hub.api_url}/app", headers={"Authorization": f"Bearer {token}"})


# -- authentication ----------------------------------------------------------------------------


def test_app_jwt_is_verified_with_the_apps_public_key(world: World) -> None:
    assert _get_app(world, world.app_jwt()).status_code == 200
    now = int(time.time()) - 60
    forged = jwt.encode(
        {"iat": now, "exp": now + 600, "iss": str(world.app.id)},
        _other_key_pem(),
        algorithm="RS256",
    )
    r = _get_app(world, forged)
    assert r.status_code == 401
    assert set(r.json()) == {"message", "documentation_url", "status"}


def test_expired_and_overlong_jwts_are_refused(world: World) -> None:
    assert _get_app(world, world.app_jwt(iat_offset=-1200)).status_code == 401
    assert _get_app(world, world.app_jwt(lifetime=3600)).status_code == 401


def test_client_id_is_accepted_as_issuer(world: World) -> None:
    now = int(time.time()) - 60
    token = jwt.encode(
        {"iat": now, "exp": now + 600, "iss": world.app.client_id},
        world.app.private_key_pem,
        algorithm="RS256",
    )
    assert _get_app(world, token).json()["slug"] == "stoneforge"


def test_jwt_is_not_accepted_on_repository_routes(world: World) -> None:
    r = httpx.get(
        f"{world.hub.api_url}/repos/{FULL}", headers={"Authorization": f"Bearer {world.app_jwt()}"}
    )
    assert r.status_code in (401, 403)


def test_bad_credentials_body_shape(world: World) -> None:
    r = httpx.get(f"{world.hub.api_url}/repos/{FULL}", headers={"Authorization": "token nope"})
    assert r.status_code == 401
    assert r.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }


def test_installation_token_only_reaches_its_repositories(world: World) -> None:
    hub = world.hub
    hub.create_repo(ORG, "secret", {"a.txt": "x\n"}, private=True)
    hub.create_repo(ORG, "public", {"a.txt": "x\n"})
    with world.client() as bot:
        assert bot.get(f"/repos/{ORG}/secret").status_code == 404
        r = bot.post(f"/repos/{ORG}/public/issues", json={"title": "x"})
        assert r.status_code == 403
        assert r.json()["message"] == "Resource not accessible by integration"
        assert bot.post(f"/repos/{FULL}/issues", json={"title": "ok"}).status_code == 201


def test_narrowed_token_permissions_are_enforced(world: World) -> None:
    token = world.installation_token(repositories=[REPO], permissions={"issues": "read"})
    with world.client(token) as c:
        assert c.get(f"/repos/{FULL}/issues").status_code == 200
        assert c.post(f"/repos/{FULL}/issues", json={"title": "x"}).status_code == 403
    too_much = httpx.post(
        f"{world.hub.api_url}/app/installations/{world.installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {world.app_jwt()}"},
        json={"permissions": {"administration": "write"}},
    )
    assert too_much.status_code == 422


def test_expired_installation_token_is_401(world: World) -> None:
    token = world.installation_token()
    world.hub.state.tokens[token].expires_at = time.time() - 1
    with world.client(token) as c:
        assert c.get(f"/repos/{FULL}").status_code == 401


def test_access_tokens_route_needs_a_jwt(world: World) -> None:
    with world.client() as bot:
        r = bot.post(f"/app/installations/{world.installation_id}/access_tokens")
    assert r.status_code == 401


# -- issues, labels, dependencies --------------------------------------------------------------


def test_issue_ids_differ_from_numbers_and_dependencies_take_ids(world: World) -> None:
    with world.client(world.maintainer.token) as c:
        a = c.post(f"/repos/{FULL}/issues", json={"title": "A"}).json()
        b = c.post(f"/repos/{FULL}/issues", json={"title": "B"}).json()
        assert a["id"] != a["number"]
        dep = f"/repos/{FULL}/issues/{b['number']}/dependencies/blocked_by"
        assert c.post(dep, json={"issue_id": a["number"]}).status_code == 404
        r = c.post(dep, json={"issue_id": a["id"]})
        assert r.status_code == 201
        assert r.json()["number"] == a["number"]
        summary = c.get(f"/repos/{FULL}/issues/{b['number']}").json()["issue_dependencies_summary"]
        assert summary["blocked_by"] == 1
        assert summary["total_blocked_by"] == 1
        c.patch(f"/repos/{FULL}/issues/{a['number']}", json={"state": "closed"})
        summary = c.get(f"/repos/{FULL}/issues/{b['number']}").json()["issue_dependencies_summary"]
        assert summary["blocked_by"] == 0
        assert summary["total_blocked_by"] == 1
        blocking = c.get(f"/repos/{FULL}/issues/{a['number']}/dependencies/blocking").json()
        assert [i["number"] for i in blocking] == [b["number"]]


def test_unknown_label_is_created_and_webhook_carries_label_and_sender(
    world: World, receiver: Receiver
) -> None:
    with world.client(world.maintainer.token) as c:
        issue = c.post(f"/repos/{FULL}/issues", json={"title": "A"}).json()
        r = c.post(f"/repos/{FULL}/issues/{issue['number']}/labels", json={"labels": ["fresh"]})
        assert [x["name"] for x in r.json()] == ["fresh"]
        assert c.get(f"/repos/{FULL}/labels/fresh").status_code == 200
        assert c.delete(f"/repos/{FULL}/issues/{issue['number']}/labels/nope").status_code == 404
    hook = receiver.wait_for(lambda h: h.event == "issues" and h.payload["action"] == "labeled")
    assert hook.payload["label"]["name"] == "fresh"
    assert hook.payload["sender"]["login"] == "mona"
    assert hook.payload["installation"]["id"] == world.installation_id
    assert world.hub.events("label_added")[0]["label"] == "fresh"


def test_webhooks_are_signed_with_the_app_secret(world: World, receiver: Receiver) -> None:
    with world.client() as bot:
        bot.post(f"/repos/{FULL}/issues", json={"title": "signed"})
    hook = receiver.wait_for(lambda h: h.event == "issues")
    expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hook.signature, expected)
    assert hook.payload["sender"]["login"] == "stoneforge[bot]"
    assert hook.payload["sender"]["type"] == "Bot"


def test_issue_list_paginates_with_link_header(world: World) -> None:
    with world.client() as bot:
        for n in range(5):
            bot.post(f"/repos/{FULL}/issues", json={"title": f"t{n}"})
        r = bot.get(f"/repos/{FULL}/issues", params={"per_page": 2})
        assert len(r.json()) == 2
        assert 'rel="next"' in r.headers["link"]
        assert "page=3" in r.headers["link"]


def test_unknown_route_is_github_404(world: World) -> None:
    with world.client() as bot:
        r = bot.get("/no/such/route")
    assert r.status_code == 404
    assert r.json()["message"] == "Not Found"


# -- pull requests and merging -----------------------------------------------------------------


@pytest.fixture
def ci_world(hub: FakeHub, receiver: Receiver, tmp_path: Path) -> World:
    return make_world(hub, receiver, tmp_path, ci_command=PASS, required=["ci"])


def _open_pr(w: World, branch: str, files: dict[str, str], body: str = "") -> tuple[int, str]:
    work = w.tmp / f"clone-{branch.replace('/', '-')}"
    if not work.exists():
        git(w.tmp, "clone", "-q", f"{w.hub.url}/{FULL}.git", str(work), token=w.bot_token)
        git(work, "config", "user.name", "Agent")
        git(work, "config", "user.email", "agent@example.com")
    sha = w.push_branch(work, branch, files, f"work on {branch}")
    with w.client() as bot:
        r = bot.post(
            f"/repos/{FULL}/pulls",
            json={"title": branch, "head": branch, "base": "main", "body": body},
        )
    assert r.status_code == 201, r.text
    return r.json()["number"], sha


def _wait_ci(w: World, sha: str) -> str:
    event = w.wait_event(lambda e: e["type"] == "check_completed" and e["sha"] == sha)
    return str(event["conclusion"])


def test_merge_refused_while_required_check_failing(
    hub: FakeHub, receiver: Receiver, tmp_path: Path
) -> None:
    w = make_world(hub, receiver, tmp_path, ci_command=FAIL, required=["ci"])
    number, sha = _open_pr(w, "sf/fail", {"x.py": "x = 1\n"})
    assert _wait_ci(w, sha) == "failure"
    with w.client() as bot:
        pr = bot.get(f"/repos/{FULL}/pulls/{number}").json()
        assert pr["mergeable_state"] == "blocked"
        r = bot.put(f"/repos/{FULL}/pulls/{number}/merge", json={"sha": sha})
    assert r.status_code == 405
    assert r.json()["message"] == 'Required status check "ci" is failing.'
    assert hub.events("merge_refused")[-1]["status"] == 405
    run = hub.state.runs_for(w.repo, sha)[0]
    assert "boom" in run.output["text"]


def test_rerequest_runs_a_flaky_ci_check_again_on_the_same_head(
    hub: FakeHub, receiver: Receiver, tmp_path: Path
) -> None:
    w = make_world(hub, receiver, tmp_path, ci_command=flaky_ci(tmp_path / "marks"))
    number, sha = _open_pr(w, "sf/flaky", {"f.py": "f = 1\n"})
    assert _wait_ci(w, sha) == "failure"
    (first,) = hub.state.runs_for(w.repo, sha)
    with w.client() as bot:
        r = bot.post(f"/repos/{FULL}/check-runs/{first.id}/rerequest")
        assert (r.status_code, r.json()) == (201, {})
        again = w.wait_event(
            lambda e: (
                e["type"] == "check_completed" and e["sha"] == sha and e["conclusion"] != "failure"
            )
        )
        assert again["conclusion"] == "success"
        listed = bot.get(f"/repos/{FULL}/commits/{sha}/check-runs").json()["check_runs"]
    assert [(c["name"], c["conclusion"]) for c in listed] == [("ci", "success")]
    assert listed[0]["id"] != first.id
    (asked,) = hub.events("check_rerequested")
    assert (asked["id"], asked["sha"], asked["by"]) == (first.id, sha, "stoneforge")
    new = listed[0]["id"]
    hook = receiver.wait_for(  # the re-run sends check_run webhooks as CI does
        lambda h: (
            h.event == "check_run"
            and h.payload["action"] == "completed"
            and h.payload["check_run"]["id"] == new
        )
    )
    assert hook.payload["check_run"]["conclusion"] == "success"


def test_merge_with_stale_sha_is_409(ci_world: World) -> None:
    number, sha = _open_pr(ci_world, "sf/stale", {"y.py": "y = 1\n"})
    _wait_ci(ci_world, sha)
    with ci_world.client() as bot:
        r = bot.put(f"/repos/{FULL}/pulls/{number}/merge", json={"sha": "0" * 40})
    assert r.status_code == 409
    assert r.json()["message"] == "Head branch was modified. Review and try the merge again."


def test_strict_protection_behind_update_branch_ci_then_merge(ci_world: World) -> None:
    w = ci_world
    n1, sha1 = _open_pr(w, "sf/one", {"one.py": "1\n"}, body=f"Closes #{1}")
    n2, sha2 = _open_pr(w, "sf/two", {"two.py": "2\n"})
    assert _wait_ci(w, sha1) == "success"
    assert _wait_ci(w, sha2) == "success"
    with w.client() as bot:
        assert bot.get(f"/repos/{FULL}/pulls/{n1}").json()["mergeable_state"] == "clean"
        assert bot.put(f"/repos/{FULL}/pulls/{n1}/merge", json={"sha": sha1}).status_code == 200
        pr2 = bot.get(f"/repos/{FULL}/pulls/{n2}").json()
        assert pr2["mergeable_state"] == "behind"
        r = bot.put(f"/repos/{FULL}/pulls/{n2}/merge", json={"sha": sha2})
        assert r.status_code == 405
        assert r.json()["message"] == "Head branch is out of date. Review and try the merge again."
        wrong = bot.put(
            f"/repos/{FULL}/pulls/{n2}/update-branch", json={"expected_head_sha": "f" * 40}
        )
        assert wrong.status_code == 422
        up = bot.put(f"/repos/{FULL}/pulls/{n2}/update-branch", json={"expected_head_sha": sha2})
        assert up.status_code == 202
        assert up.json()["message"] == "Updating pull request branch."
        new_head = bot.get(f"/repos/{FULL}/pulls/{n2}").json()["head"]["sha"]
        assert new_head != sha2
        assert _wait_ci(w, new_head) == "success"
        assert bot.get(f"/repos/{FULL}/pulls/{n2}").json()["mergeable_state"] == "clean"
        assert bot.put(f"/repos/{FULL}/pulls/{n2}/merge", json={"sha": new_head}).status_code == 200
    merges = w.hub.events("merge")
    assert [m["pr"] for m in merges] == [n1, n2]
    assert merges[1]["checks"] == {"ci": "success"}
    assert merges[1]["head_sha"] == new_head
    assert (
        w.receiver.wait_for(
            lambda h: (
                h.event == "pull_request"
                and h.payload["action"] == "synchronize"
                and h.payload["after"] == new_head
            )
        ).payload["before"]
        == sha2
    )


@pytest.mark.parametrize(("method", "parents"), [("merge", 2), ("squash", 1), ("rebase", 1)])
def test_merge_methods_shape_history(
    hub: FakeHub, receiver: Receiver, tmp_path: Path, method: str, parents: int
) -> None:
    w = make_world(hub, receiver, tmp_path)
    work = w.clone()
    git(work, "checkout", "-q", "-b", "sf/feat")
    for n in range(2):
        (work / f"f{n}.txt").write_text(f"{n}\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", f"feat {n}")
    git(work, "push", "-q", "origin", "HEAD:refs/heads/sf/feat", token=w.bot_token)
    base = hub.git.ref_sha(FULL, "main")
    with w.client() as bot:
        n = bot.post(
            f"/repos/{FULL}/pulls", json={"title": "Feat", "head": "sf/feat", "base": "main"}
        ).json()["number"]
        r = bot.put(f"/repos/{FULL}/pulls/{n}/merge", json={"merge_method": method})
        assert r.status_code == 200, r.text
        assert bot.get(f"/repos/{FULL}/pulls/{n}/merge").status_code == 204
    tip = hub.git.commit_info(FULL, r.json()["sha"])
    assert hub.git.ref_sha(FULL, "main") == tip.sha
    assert len(tip.parents) == parents
    if method == "rebase":
        assert hub.git.commit_info(FULL, tip.parents[0]).parents == [base]
        assert tip.message == "feat 1"
    if method == "squash":
        assert tip.parents == [base]
        assert tip.message.startswith("Feat (#")
    assert hub.git.read_file(FULL, "main", "f1.txt") == b"1\n"


def test_closing_keywords_close_issues_on_merge(world: World, receiver: Receiver) -> None:
    with world.client(world.maintainer.token) as c:
        a = c.post(f"/repos/{FULL}/issues", json={"title": "A"}).json()
        b = c.post(f"/repos/{FULL}/issues", json={"title": "B"}).json()
        other = c.post(f"/repos/{FULL}/issues", json={"title": "untouched"}).json()
    body = f"Fixes #{a['number']}\nalso resolves {FULL}#{b['number']}; see #{other['number']}"
    number, _ = _open_pr(world, "sf/close", {"c.txt": "c\n"}, body=body)
    with world.client() as bot:
        assert bot.put(f"/repos/{FULL}/pulls/{number}/merge").status_code == 200
        states = {
            n: bot.get(f"/repos/{FULL}/issues/{n}").json()
            for n in (a["number"], b["number"], other["number"])
        }
    assert states[a["number"]]["state"] == "closed"
    assert states[a["number"]]["state_reason"] == "completed"
    assert states[b["number"]]["state"] == "closed"
    assert states[other["number"]]["state"] == "open"
    closed = receiver.wait_for(
        lambda h: h.event == "pull_request" and h.payload["action"] == "closed"
    )
    assert closed.payload["pull_request"]["merged"] is True
    assert {e["issue"] for e in world.hub.events("issue_closed")} == {a["number"], b["number"]}


def test_pull_request_validation_errors(world: World) -> None:
    with world.client() as bot:
        missing = bot.post(
            f"/repos/{FULL}/pulls", json={"title": "x", "head": "nope", "base": "main"}
        )
        assert missing.status_code == 422
        git_branch = world.hub.git.ref_sha(FULL, "main")
        assert git_branch is not None
        world.hub.git.set_branch(FULL, "same", git_branch)
        none = bot.post(f"/repos/{FULL}/pulls", json={"title": "x", "head": "same", "base": "main"})
        assert none.status_code == 422
        assert "No commits between" in none.json()["errors"][0]["message"]


# -- faults and admin --------------------------------------------------------------------------


def test_secondary_rate_limit_fault(world: World) -> None:
    token = world.bot_token
    world.hub.faults.update(secondary_rate_limit_rate=1.0)
    with world.client(token) as bot:
        r = bot.get(f"/repos/{FULL}")
    assert r.status_code == 403
    assert "secondary rate limit" in r.json()["message"]
    assert r.headers["retry-after"]
    world.hub.faults.update(secondary_rate_limit_rate=0.0)


def test_admin_http_mirrors_the_facade(hub: FakeHub) -> None:
    with httpx.Client(base_url=hub.url) as c:
        user = c.post("/_fakehub/users", json={"login": "alice"}).json()
        assert user["token"]
        repo = c.post(
            "/_fakehub/repos", json={"owner": "alice", "name": "r", "files": {"a.txt": "a\n"}}
        ).json()
        assert repo["clone_url"] == f"{hub.url}/alice/r.git"
        r = c.get("/api/v3/repos/alice/r", headers={"Authorization": f"token {user['token']}"})
        assert r.json()["permissions"]["admin"] is True
        faults = c.put("/_fakehub/faults", json={"api": {"latency_s": 0.0}}).json()
        assert faults["api"]["latency_s"] == 0.0
        assert c.get("/_fakehub/events").status_code == 200


def test_deleting_a_merged_branch_retargets_the_pulls_based_on_it(
    world: World, receiver: Receiver
) -> None:
    """GitHub's automatic retargeting: a pull request based on a branch whose own pull request
    merged moves to that pull request's base when the branch is deleted; one based on a branch
    deleted unmerged is closed. And the compare that tells a stacked branch from a rewrite."""
    work = world.clone()
    lower = world.push_branch(work, "sf/lower", {"a.txt": "a\n"}, "lower")
    upper = world.push_branch(work, "sf/upper", {"b.txt": "b\n"}, "upper")  # on top of lower
    git(work, "checkout", "-q", "main")
    world.push_branch(work, "sf/side", {"c.txt": "c\n"}, "side")
    world.push_branch(work, "sf/on-side", {"d.txt": "d\n"}, "on side")
    with world.client() as bot:
        new = f"/repos/{FULL}/pulls"
        low = bot.post(new, json={"title": "L", "head": "sf/lower", "base": "main"}).json()
        up = bot.post(new, json={"title": "U", "head": "sf/upper", "base": "sf/lower"}).json()
        side = bot.post(new, json={"title": "S", "head": "sf/on-side", "base": "sf/side"}).json()
        compare = bot.get(f"/repos/{FULL}/compare/{lower}...sf/upper").json()
        assert (compare["status"], compare["ahead_by"], compare["behind_by"]) == ("ahead", 1, 0)
        assert bot.get(f"/repos/{FULL}/compare/{upper}...{lower}").json()["status"] == "behind"
        assert bot.get(f"/repos/{FULL}/compare/{lower}...nope").status_code == 404
        assert bot.put(f"/repos/{FULL}/pulls/{low['number']}/merge").status_code == 200
        assert bot.delete(f"/repos/{FULL}/git/refs/heads/sf/lower").status_code == 204
        assert bot.delete(f"/repos/{FULL}/git/refs/heads/sf/side").status_code == 204
        moved = bot.get(f"/repos/{FULL}/pulls/{up['number']}").json()
        assert (moved["state"], moved["base"]["ref"]) == ("open", "main")
        assert bot.get(f"/repos/{FULL}/pulls/{side['number']}").json()["state"] == "closed"
    edited = receiver.wait_for(
        lambda h: (
            h.event == "pull_request"
            and h.payload["action"] == "edited"
            and h.payload["number"] == up["number"]
        )
    )
    assert edited.payload["changes"]["base"]["ref"]["from"] == "sf/lower"
