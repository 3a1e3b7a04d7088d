"""Issue routes: issues, labels and the issue's label events.

Comments and reactions are in ``comments.py``; dependencies and sub-issues in
``dependencies.py``. Both use :func:`find_issue` and :func:`validation_error` from here.
"""

from __future__ import annotations

import time
from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import Issue, Label, Repo, iso
from fakehub.rest.context import Ctx, Result, paginate


def find_issue(ctx: Ctx, repo: Repo) -> Issue:
    issue = ctx.state.issue(repo, ctx.int_param("issue_number"))
    if issue is None:
        raise not_found()
    return issue


def validation_error(field: str, code: str = "invalid", resource: str = "Issue") -> ApiError:
    return ApiError(
        422, "Validation Failed", errors=[{"resource": resource, "field": field, "code": code}]
    )


def _emit_issue(ctx: Ctx, issue: Issue, action: str, **extra: Any) -> None:
    if issue.pull is not None:
        if action in ("labeled", "unlabeled", "edited", "closed", "reopened"):
            ctx.hub.emit_pull(issue, action, ctx.actor.user, **extra)
        return
    body = {"action": action, "issue": ctx.hub.payloads.issue(issue), **extra}
    ctx.hub.emit(issue.repo, "issues", body, ctx.actor.user)


def _add_labels(ctx: Ctx, issue: Issue, names: list[Any]) -> None:
    for name in names:
        name = name.get("name") if isinstance(name, dict) else name
        if not isinstance(name, str) or not name.strip():
            raise validation_error("labels")
        label = ctx.state.label(issue.repo, name.strip(), create=True)
        assert label is not None
        if any(existing is label for existing in issue.labels):
            continue
        issue.labels.append(label)
        issue.updated_at = time.time()
        ctx.state.record(
            "label_added",
            repo=issue.repo.full_name,
            issue=issue.number,
            label=label.name,
            by=ctx.actor.user.login,
        )
        _emit_issue(ctx, issue, "labeled", label=ctx.hub.payloads.label(issue.repo, label))


def _remove_label(ctx: Ctx, issue: Issue, label: Label) -> None:
    issue.labels = [x for x in issue.labels if x is not label]
    issue.updated_at = time.time()
    ctx.state.record(
        "label_removed",
        repo=issue.repo.full_name,
        issue=issue.number,
        label=label.name,
        by=ctx.actor.user.login,
    )
    _emit_issue(ctx, issue, "unlabeled", label=ctx.hub.payloads.label(issue.repo, label))


def _assignees(ctx: Ctx, logins: list[Any]) -> list[Any]:
    users = []
    for login in logins:
        user = ctx.state.user(str(login))
        if user is not None:
            users.append(user)
    return users


# -- issues ----------------------------------------------------------------------------------


def create_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    title = ctx.field("title", (str, int), required=True)
    with ctx.state.lock:
        issue = ctx.state.add_issue(
            repo,
            str(title),
            ctx.field("body", str),
            ctx.actor.user,
            app=ctx.actor.app if ctx.actor.kind == "installation" else None,
        )
        labels = ctx.field("labels", list) or []
        for name in labels:
            name = name.get("name") if isinstance(name, dict) else name
            label = ctx.state.label(repo, str(name), create=True)
            if label is not None and label not in issue.labels:
                issue.labels.append(label)
        issue.assignees = _assignees(ctx, ctx.field("assignees", list) or [])
        body = ctx.hub.payloads.issue(issue)
    _emit_issue(ctx, issue, "opened")
    return 201, body


def list_issues(ctx: Ctx) -> Result:

    repo = ctx.repo("issues")
    state = ctx.query.get("state", "open")
    wanted = {x.strip().lower() for x in ctx.query.get("labels", "").split(",") if x.strip()}
    with ctx.state.lock:
        found = [
            i
            for i in repo.issues.values()
            if (state == "all" or i.state == state)
            and wanted <= {lbl.name.lower() for lbl in i.labels}
        ]
        reverse = ctx.query.get("direction", "desc") == "desc"
        found.sort(
            key=lambda i: i.created_at if ctx.query.get("sort") != "updated" else i.updated_at,
            reverse=reverse,
        )
        found.sort(key=lambda i: i.number, reverse=reverse)
        chunk, headers = paginate(ctx, found)
        return 200, [ctx.hub.payloads.issue(i) for i in chunk], headers


def get_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues")
    return 200, ctx.hub.payloads.issue(find_issue(ctx, repo))


def update_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = find_issue(ctx, repo)
    changes: dict[str, Any] = {}
    with ctx.state.lock:
        title = ctx.field("title", (str, int))
        if title is not None and str(title) != issue.title:
            changes["title"] = {"from": issue.title}
            issue.title = str(title)
        body = ctx.field("body", str)
        if isinstance(ctx.body, dict) and "body" in ctx.body and body != issue.body:
            changes["body"] = {"from": issue.body or ""}
            issue.body = body
        labels = ctx.field("labels", list)
        assignees = ctx.field("assignees", list)
        if assignees is not None:
            issue.assignees = _assignees(ctx, assignees)
        state = ctx.field("state", str)
        reason = ctx.field("state_reason", str)
        if state not in (None, "open", "closed"):
            raise validation_error("state")
        if reason not in (None, "completed", "not_planned", "reopened", "duplicate"):
            raise validation_error("state_reason")
    if changes:
        issue.updated_at = time.time()
        _emit_issue(ctx, issue, "edited", changes=changes)
    if labels is not None:
        new = {str(n.get("name") if isinstance(n, dict) else n).lower() for n in labels}
        for label in [x for x in issue.labels if x.name.lower() not in new]:
            _remove_label(ctx, issue, label)
        _add_labels(ctx, issue, labels)
    if state == "closed" and issue.state == "open":
        if issue.pull is not None:
            ctx.hub.set_pull_state(issue, "closed", ctx.actor.user)
        else:
            ctx.hub.close_issue(issue, ctx.actor.user, reason or "completed")
    elif state == "open" and issue.state == "closed":
        if issue.pull is not None:
            if issue.pull.merged:
                raise validation_error("state", resource="PullRequest")
            ctx.hub.set_pull_state(issue, "open", ctx.actor.user)
        else:
            issue.state, issue.state_reason = "open", "reopened"
            issue.closed_at = issue.closed_by = None
            issue.updated_at = time.time()
            _emit_issue(ctx, issue, "reopened")
    elif reason and issue.state == "closed":
        issue.state_reason = reason
    return 200, ctx.hub.payloads.issue(issue)


# -- labels ----------------------------------------------------------------------------------


def list_labels(ctx: Ctx) -> Result:

    repo = ctx.repo("issues")
    labels = sorted(repo.labels.values(), key=lambda x: x.name.lower())
    chunk, headers = paginate(ctx, labels)
    return 200, [ctx.hub.payloads.label(repo, x) for x in chunk], headers


def create_label(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    name = ctx.field("name", str, required=True)
    with ctx.state.lock:
        if ctx.state.label(repo, name) is not None:
            raise validation_error("name", "already_exists", "Label")
        label = ctx.state.label(repo, name, create=True)
        assert label is not None
        label.color = (ctx.field("color", str) or label.color).lstrip("#")
        label.description = ctx.field("description", str)
    return 201, ctx.hub.payloads.label(repo, label)


def get_label(ctx: Ctx) -> Result:
    repo = ctx.repo("issues")
    label = ctx.state.label(repo, ctx.params["name"])
    if label is None:
        raise not_found()
    return 200, ctx.hub.payloads.label(repo, label)


def list_issue_labels(ctx: Ctx) -> Result:
    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


def add_issue_labels(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = find_issue(ctx, repo)
    names = ctx.body.get("labels") if isinstance(ctx.body, dict) else ctx.body
    if not isinstance(names, list):
        raise validation_error("labels")
    _add_labels(ctx, issue, names)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


def set_issue_labels(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = find_issue(ctx, repo)
    names = ctx.body.get("labels") if isinstance(ctx.body, dict) else (ctx.body or [])
    if not isinstance(names, list):
        raise validation_error("labels")
    wanted = {str(n.get("name") if isinstance(n, dict) else n).lower() for n in names}
    for label in [x for x in issue.labels if x.name.lower() not in wanted]:
        _remove_label(ctx, issue, label)
    _add_labels(ctx, issue, names)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


def remove_issue_label(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = find_issue(ctx, repo)
    label = next((x for x in issue.labels if x.name.lower() == ctx.params["name"].lower()), None)
    if label is None:
        raise ApiError(404, "Label does not exist")
    _remove_label(ctx, issue, label)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


# -- label events ----------------------------------------------------------------------------------


def list_issue_events(ctx: Ctx) -> Result:
    """The issue's timeline of label events (``labeled`` / ``unlabeled``), oldest first."""

    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
    items = []
    for n, entry in enumerate(ctx.state.events()):
        if entry["type"] not in ("label_added", "label_removed"):
            continue
        if entry["repo"] != repo.full_name or entry["issue"] != issue.number:
            continue
        actor = ctx.state.user(entry["by"])
        label = ctx.state.label(repo, entry["label"])
        event_id = 5_000_000 + n
        items.append(
            {
                "id": event_id,
                "node_id": f"LE_{event_id}",
                "url": f"{ctx.hub.payloads.api}/repos/{repo.full_name}/issues/events/{event_id}",
                "actor": ctx.hub.payloads.user(actor) if actor else None,
                "event": "labeled" if entry["type"] == "label_added" else "unlabeled",
                "commit_id": None,
                "commit_url": None,
                "created_at": iso(entry["at"]),
                "performed_via_github_app": None,
                "label": {
                    "name": entry["label"],
                    "color": label.color if label else "ededed",
                },
            }
        )
    chunk, headers = paginate(ctx, items)
    return 200, chunk, headers


_I = "/repos/{owner}/{repo}/issues"
TABLE: list[tuple[str, list[str], Any]] = [
    (_I, ["POST"], create_issue),
    (_I, ["GET"], list_issues),
    (_I + "/{issue_number}", ["GET"], get_issue),
    (_I + "/{issue_number}", ["PATCH"], update_issue),
    (_I + "/{issue_number}/labels", ["GET"], list_issue_labels),
    (_I + "/{issue_number}/labels", ["POST"], add_issue_labels),
    (_I + "/{issue_number}/labels", ["PUT"], set_issue_labels),
    (_I + "/{issue_number}/labels/{name:path}", ["DELETE"], remove_issue_label),
    (_I + "/{issue_number}/events", ["GET"], list_issue_events),
    ("/repos/{owner}/{repo}/labels", ["GET"], list_labels),
    ("/repos/{owner}/{repo}/labels", ["POST"], create_label),
    ("/repos/{owner}/{repo}/labels/{name:path}", ["GET"], get_label),
]
