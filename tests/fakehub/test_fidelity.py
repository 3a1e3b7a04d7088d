"""Fidelity: every REST response and every webhook payload fakehub produces in a realistic
scenario validates against GitHub's official OpenAPI descriptions, and githubkit's own models
parse what the bot reads."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit import AppAuthStrategy, GitHub

from fakehub.server import FakeHub
from tests.fakehub.conftest import FULL, ORG, REPO, make_world
from tests.fakehub.openapi import Spec
from tests.harness import Receiver, World


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    body: Any


class Recorder:
    """ASGI middleware keeping every ``/api/v3`` response fakehub sends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/v3/"):
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        raw = b"".join(chunks)
        body = json.loads(raw) if raw else None
        path = scope["path"].removeprefix("/api/v3")
        self.exchanges.append(Exchange(scope["method"], path, status, body))


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[FakeHub, Recorder]]:
    hub = FakeHub(tmp_path / "fakehub")
    recorder = Recorder(hub.app)
    hub.app = recorder  # type: ignore[assignment]
    hub.start()
    yield hub, recorder
    hub.stop()


def test_problem_names_path_status_and_pointer(spec: Spec) -> None:
    problems = spec.validate_response("GET", "/repos/o/r/issues/1", 200, {"id": "x"})
    assert problems
    text = "\n".join(map(str, problems))
    assert "GET /repos/o/r/issues/1 -> 200" in text
    assert "at /id" in text or "at /" in text


def test_validator_rejects_null_for_omitted_optional_key(spec: Spec) -> None:
    label = {
        "id": 1,
        "node_id": "x",
        "url": "u",
        "name": "n",
        "description": None,
        "color": "fff",
        "default": False,
    }
    assert spec.validate_response("GET", "/repos/o/r/labels/n", 200, label) == []
    assert spec.validate_response("GET", "/repos/o/r/labels/n", 200, {**label, "id": None})


def _scenario(w: World) -> None:  # noqa: PLR0915 - one story, read top to bottom
    hub = w.hub
    jwt_headers = {"Authorization": f"Bearer {w.app_jwt()}"}
    with httpx.Client(base_url=w.hub.api_url, headers=jwt_headers) as app_client:
        assert app_client.get("/app").status_code == 200
        assert app_client.get("/app/installations").status_code == 200
        assert app_client.get(f"/app/installations/{w.installation_id}").status_code == 200
        assert app_client.get(f"/repos/{FULL}/installation").status_code == 200
        narrow = app_client.post(
            f"/app/installations/{w.installation_id}/access_tokens",
            json={"repositories": [REPO], "permissions": {"issues": "write"}},
        )
        assert narrow.status_code == 201, narrow.text
    maint = w.client(w.maintainer.token)
    bot = w.client()
    assert bot.get("/installation/repositories").status_code == 200
    for path in (
        f"/repos/{FULL}",
        f"/repos/{FULL}/branches/main",
        f"/repos/{FULL}/branches/main/protection/required_status_checks",
        f"/repos/{FULL}/git/ref/heads/main",
        f"/repos/{FULL}/contents/README.md",
        f"/repos/{FULL}/collaborators/mona/permission",
    ):
        r = bot.get(path)
        assert r.status_code == 200, (path, r.text)
    assert bot.get(f"/repos/{FULL}/contents/missing.txt").status_code == 404

    # Issues, labels, comments, reactions.
    assert (
        maint.post(
            f"/repos/{FULL}/labels", json={"name": "agent-ready", "color": "0e8a16"}
        ).status_code
        == 201
    )
    issues = []
    for title in ("Add users endpoint", "Add auth", "Epic: accounts"):
        r = maint.post(
            f"/repos/{FULL}/issues", json={"title": title, "body": "Do it.", "labels": ["task"]}
        )
        assert r.status_code == 201, r.text
        issues.append(r.json())
    a, b, epic = issues
    assert (
        maint.get(f"/repos/{FULL}/issues", params={"labels": "task", "per_page": 2}).status_code
        == 200
    )
    assert (
        maint.post(
            f"/repos/{FULL}/issues/{a['number']}/labels", json={"labels": ["agent-ready"]}
        ).status_code
        == 200
    )
    assert maint.get(f"/repos/{FULL}/issues/{a['number']}/labels").status_code == 200
    assert (
        maint.put(
            f"/repos/{FULL}/issues/{b['number']}/labels", json={"labels": ["agent-ready", "task"]}
        ).status_code
        == 200
    )
    assert maint.delete(f"/repos/{FULL}/issues/{b['number']}/labels/task").status_code == 200
    assert maint.get(f"/repos/{FULL}/labels").status_code == 200
    assert maint.get(f"/repos/{FULL}/labels/agent-ready").status_code == 200
    assert (
        maint.patch(
            f"/repos/{FULL}/issues/{b['number']}", json={"title": "Add authentication"}
        ).status_code
        == 200
    )
    c = bot.post(f"/repos/{FULL}/issues/{a['number']}/comments", json={"body": "Claimed."})
    assert c.status_code == 201
    cid = c.json()["id"]
    assert bot.get(f"/repos/{FULL}/issues/{a['number']}/comments").status_code == 200
    assert bot.get(f"/repos/{FULL}/issues/comments/{cid}").status_code == 200
    assert (
        bot.patch(
            f"/repos/{FULL}/issues/comments/{cid}", json={"body": "Claimed (edited)."}
        ).status_code
        == 200
    )
    assert (
        bot.post(
            f"/repos/{FULL}/issues/comments/{cid}/reactions", json={"content": "eyes"}
        ).status_code
        == 201
    )
    assert (
        bot.post(
            f"/repos/{FULL}/issues/{a['number']}/reactions", json={"content": "rocket"}
        ).status_code
        == 201
    )
    extra = maint.post(f"/repos/{FULL}/issues/{a['number']}/comments", json={"body": "tmp"})
    assert maint.delete(f"/repos/{FULL}/issues/comments/{extra.json()['id']}").status_code == 204

    # Dependencies (by database id) and sub-issues.
    dep = f"/repos/{FULL}/issues/{b['number']}/dependencies/blocked_by"
    assert maint.post(dep, json={"issue_id": a["id"]}).status_code == 201
    assert maint.get(dep).status_code == 200
    assert maint.get(f"/repos/{FULL}/issues/{a['number']}/dependencies/blocking").status_code == 200
    assert maint.delete(f"{dep}/{a['id']}").status_code == 200
    assert maint.post(dep, json={"issue_id": a["id"]}).status_code == 201
    sub = f"/repos/{FULL}/issues/{epic['number']}/sub_issues"
    assert maint.post(sub, json={"sub_issue_id": b["id"]}).status_code == 201
    assert maint.get(sub).status_code == 200
    assert maint.get(f"/repos/{FULL}/issues/{b['number']}/parent").status_code == 200
    assert (
        maint.request(
            "DELETE",
            f"/repos/{FULL}/issues/{epic['number']}/sub_issue",
            json={"sub_issue_id": b["id"]},
        ).status_code
        == 200
    )
    assert maint.post(sub, json={"sub_issue_id": a["id"]}).status_code == 201
    assert maint.get(f"/repos/{FULL}/issues/{b['number']}").status_code == 200

    # Two pull requests; CI runs on each head.
    work = w.clone()
    head1 = w.push_branch(work, "sf/1-users", {"app/users.py": "USERS = []\n"}, "Add users")
    git_main(work)
    head2 = w.push_branch(work, "sf/2-auth", {"app/auth.py": "AUTH = True\n"}, "Add auth")
    pr1 = bot.post(
        f"/repos/{FULL}/pulls",
        json={
            "title": "Add users endpoint",
            "head": "sf/1-users",
            "base": "main",
            "body": f"Closes #{a['number']}",
        },
    )
    assert pr1.status_code == 201, pr1.text
    pr2 = bot.post(
        f"/repos/{FULL}/pulls",
        json={
            "title": "Add auth",
            "head": f"{ORG}:sf/2-auth",
            "base": "main",
            "body": f"Fixes #{b['number']}",
        },
    )
    assert pr2.status_code == 201, pr2.text
    n1, n2 = pr1.json()["number"], pr2.json()["number"]
    for sha in (head1, head2):
        w.wait_event(lambda e, s=sha: e["type"] == "check_completed" and e["sha"] == s)
    assert (
        bot.post(
            f"/repos/{FULL}/statuses/{head1}",
            json={"state": "success", "context": "lint", "description": "ok"},
        ).status_code
        == 201
    )
    for path in (
        f"/repos/{FULL}/pulls/{n1}",
        f"/repos/{FULL}/pulls/{n1}/files",
        f"/repos/{FULL}/commits/{head1}/check-runs",
        f"/repos/{FULL}/commits/{head1}/check-suites",
        f"/repos/{FULL}/commits/{head1}/status",
        f"/repos/{FULL}/commits/{head1}/statuses",
        f"/repos/{FULL}/commits/sf/1-users/check-runs",
    ):
        r = bot.get(path)
        assert r.status_code == 200, (path, r.text)
    assert bot.get(f"/repos/{FULL}/pulls", params={"head": f"{ORG}:sf/1-users"}).status_code == 200

    # Reviews: changes requested with an inline comment, dismissed, then approved.
    review = maint.post(
        f"/repos/{FULL}/pulls/{n1}/reviews",
        json={
            "event": "REQUEST_CHANGES",
            "body": "Please rename.",
            "comments": [{"path": "app/users.py", "line": 1, "body": "A tuple?"}],
        },
    )
    assert review.status_code == 200, review.text
    rid = review.json()["id"]
    for path in (
        f"/repos/{FULL}/pulls/{n1}/reviews",
        f"/repos/{FULL}/pulls/{n1}/reviews/{rid}",
        f"/repos/{FULL}/pulls/{n1}/comments",
    ):
        r = bot.get(path)
        assert r.status_code == 200, (path, r.text)
    dismissed = maint.put(
        f"/repos/{FULL}/pulls/{n1}/reviews/{rid}/dismissals", json={"message": "Stale"}
    )
    assert dismissed.status_code == 200, dismissed.text
    approve = maint.post(f"/repos/{FULL}/pulls/{n1}/reviews", json={"event": "APPROVE"})
    assert approve.status_code == 200, approve.text
    assert bot.get(f"/repos/{FULL}/pulls/{n1}/merge").status_code == 404
    run = bot.post(
        f"/repos/{FULL}/check-runs",
        json={"name": "stoneforge", "head_sha": head1, "status": "in_progress"},
    )
    assert run.status_code == 201, run.text
    rid = run.json()["id"]
    assert (
        bot.patch(
            f"/repos/{FULL}/check-runs/{rid}",
            json={"conclusion": "success", "output": {"title": "Ready", "summary": "All good"}},
        ).status_code
        == 200
    )
    assert bot.get(f"/repos/{FULL}/check-runs/{rid}").status_code == 200

    # Merge the first; the second is then behind, is updated, re-checked and squashed.
    m = bot.put(f"/repos/{FULL}/pulls/{n1}/merge", json={"sha": head1, "merge_method": "merge"})
    assert m.status_code == 200, m.text
    assert bot.get(f"/repos/{FULL}/pulls/{n1}/merge").status_code == 204
    refused = bot.put(f"/repos/{FULL}/pulls/{n2}/merge", json={"sha": head2})
    assert refused.status_code == 405, refused.text
    assert bot.get(f"/repos/{FULL}/pulls/{n2}").json()["mergeable_state"] == "behind"
    up = bot.put(f"/repos/{FULL}/pulls/{n2}/update-branch", json={"expected_head_sha": head2})
    assert up.status_code == 202, up.text
    new_head = w.wait_event(lambda e: e["type"] == "branch_updated" and e["pr"] == n2)["head_sha"]
    w.wait_event(lambda e: e["type"] == "check_completed" and e["sha"] == new_head)
    m2 = bot.put(
        f"/repos/{FULL}/pulls/{n2}/merge", json={"sha": new_head, "merge_method": "squash"}
    )
    assert m2.status_code == 200, m2.text
    assert (
        bot.patch(f"/repos/{FULL}/pulls/{n2}", json={"title": "Add auth (done)"}).status_code == 200
    )
    assert bot.delete(f"/repos/{FULL}/git/refs/heads/sf/1-users").status_code == 204
    assert bot.get(f"/repos/{FULL}/issues", params={"state": "all"}).status_code == 200
    maint.patch(
        f"/repos/{FULL}/issues/{epic['number']}",
        json={"state": "closed", "state_reason": "not_planned"},
    )
    maint.patch(f"/repos/{FULL}/issues/{epic['number']}", json={"state": "open"})

    # githubkit itself, with its strict models.
    gh = GitHub(
        AppAuthStrategy(str(w.app.id), w.app.private_key_pem),
        base_url=w.hub.api_url,
        http_cache=False,
        auto_retry=False,
    )
    assert gh.rest.apps.get_authenticated().parsed_data.slug == "stoneforge"
    assert gh.rest.apps.get_repo_installation(ORG, REPO).parsed_data.id == w.installation_id
    inst = gh.with_auth(gh.auth.as_installation(w.installation_id))
    issue = inst.rest.issues.get(ORG, REPO, a["number"]).parsed_data
    assert issue.id == a["id"]
    assert issue.state == "closed"
    assert [
        i.number
        for i in inst.rest.issues.list_dependencies_blocked_by(ORG, REPO, b["number"]).parsed_data
    ] == [a["number"]]
    listed = inst.rest.issues.list_for_repo(ORG, REPO, state="all").parsed_data
    assert {i.number for i in listed} >= {a["number"], n1}
    pull = inst.rest.pulls.get(ORG, REPO, n2).parsed_data
    assert pull.merged is True
    assert inst.rest.pulls.list(ORG, REPO, state="closed").parsed_data
    assert inst.rest.repos.get(ORG, REPO).parsed_data.default_branch == "main"
    assert inst.rest.repos.get_branch(ORG, REPO, "main").parsed_data.name == "main"
    runs = inst.rest.checks.list_for_ref(ORG, REPO, head1).parsed_data
    assert {r.name for r in runs.check_runs} == {"ci", "stoneforge"}
    assert inst.rest.repos.get_combined_status_for_ref(ORG, REPO, head1).parsed_data.state
    assert inst.rest.issues.list_comments(ORG, REPO, a["number"]).parsed_data
    assert inst.rest.issues.list_labels_on_issue(ORG, REPO, a["number"]).parsed_data
    assert inst.rest.issues.get_label(ORG, REPO, "agent-ready").parsed_data
    assert inst.rest.repos.get_collaborator_permission_level(ORG, REPO, "mona").parsed_data
    assert inst.rest.git.get_ref(ORG, REPO, "heads/main").parsed_data.object_.sha
    assert inst.rest.issues.list_sub_issues(ORG, REPO, epic["number"]).parsed_data
    token = gh.rest.apps.create_installation_access_token(w.installation_id).parsed_data
    assert token.token.startswith("ghs_")
    assert inst.rest.repos.get_status_checks_protection(ORG, REPO, "main").parsed_data.strict
    assert inst.rest.pulls.list_files(ORG, REPO, n2).parsed_data
    states = [r.state for r in inst.rest.pulls.list_reviews(ORG, REPO, n1).parsed_data]
    assert states == ["DISMISSED", "APPROVED"]
    inline = inst.rest.pulls.list_review_comments(ORG, REPO, n1).parsed_data
    assert [(c.path, c.line, c.body) for c in inline] == [("app/users.py", 1, "A tuple?")]

    # Hook deliveries, through the App JWT.
    hub.sender.wait_idle(10)
    deliveries = gh.rest.apps.list_webhook_deliveries().parsed_data
    assert deliveries
    assert gh.rest.apps.redeliver_webhook_delivery(deliveries[-1].id).status_code == 202
    hub.sender.wait_idle(10)


def git_main(work: Path) -> None:
    from tests.harness import git

    git(work, "checkout", "-q", "main")


def test_every_response_and_webhook_matches_github_descriptions(
    recorded: tuple[FakeHub, Recorder], receiver: Receiver, tmp_path: Path, spec: Spec
) -> None:
    hub, recorder = recorded
    w = make_world(
        hub, receiver, tmp_path, ci_command=[sys.executable, "-c", "print('ok')"], required=["ci"]
    )
    _scenario(w)

    problems = []
    for x in recorder.exchanges:
        problems += spec.validate_response(x.method, x.path, x.status, x.body)
    assert len(recorder.exchanges) > 80
    seen_events = set()
    for record in hub.sender.records():
        seen_events.add(f"{record.event}.{record.payload.get('action')}")
        problems += spec.validate_webhook(record.event, record.payload)
    assert not problems, "\n".join(map(str, problems[:40])) + f"\n({len(problems)} problems)"
    expected = {
        "installation.created",
        "issues.opened",
        "issues.labeled",
        "issues.unlabeled",
        "issues.edited",
        "issues.closed",
        "issues.reopened",
        "issue_comment.created",
        "issue_comment.edited",
        "issue_comment.deleted",
        "issue_dependencies.blocked_by_added",
        "issue_dependencies.blocking_added",
        "issue_dependencies.blocked_by_removed",
        "issue_dependencies.blocking_removed",
        "sub_issues.sub_issue_added",
        "sub_issues.parent_issue_added",
        "sub_issues.sub_issue_removed",
        "sub_issues.parent_issue_removed",
        "pull_request.opened",
        "pull_request.synchronize",
        "pull_request.closed",
        "pull_request.edited",
        "pull_request_review.submitted",
        "pull_request_review.dismissed",
        "check_run.created",
        "check_run.completed",
        "check_suite.completed",
        "status.None",
        "push.None",
    }
    assert expected <= seen_events, expected - seen_events
