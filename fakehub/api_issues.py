"""Issue routes: issues, labels, comments, reactions, dependencies and sub-issues."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fakehub.auth import ApiError, not_found
from fakehub.payloads import REACTIONS
from fakehub.state import Comment, Issue, Label, Reaction, Repo, iso

if TYPE_CHECKING:
    from fakehub.api import Ctx, Result


def _issue(ctx: Ctx, repo: Repo) -> Issue:
    issue = ctx.state.issue(repo, ctx.int_param("issue_number"))
    if issue is None:
        raise not_found()
    return issue


def _validation(field: str, code: str = "invalid", resource: str = "Issue") -> ApiError:
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
            raise _validation("labels")
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
    from fakehub.api import paginate

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
    return 200, ctx.hub.payloads.issue(_issue(ctx, repo))


def update_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
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
            raise _validation("state")
        if reason not in (None, "completed", "not_planned", "reopened", "duplicate"):
            raise _validation("state_reason")
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
                raise _validation("state", resource="PullRequest")
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
    from fakehub.api import paginate

    repo = ctx.repo("issues")
    labels = sorted(repo.labels.values(), key=lambda x: x.name.lower())
    chunk, headers = paginate(ctx, labels)
    return 200, [ctx.hub.payloads.label(repo, x) for x in chunk], headers


def create_label(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    name = ctx.field("name", str, required=True)
    with ctx.state.lock:
        if ctx.state.label(repo, name) is not None:
            raise _validation("name", "already_exists", "Label")
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
    issue = _issue(ctx, repo)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


def add_issue_labels(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
    names = ctx.body.get("labels") if isinstance(ctx.body, dict) else ctx.body
    if not isinstance(names, list):
        raise _validation("labels")
    _add_labels(ctx, issue, names)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


def set_issue_labels(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
    names = ctx.body.get("labels") if isinstance(ctx.body, dict) else (ctx.body or [])
    if not isinstance(names, list):
        raise _validation("labels")
    wanted = {str(n.get("name") if isinstance(n, dict) else n).lower() for n in names}
    for label in [x for x in issue.labels if x.name.lower() not in wanted]:
        _remove_label(ctx, issue, label)
    _add_labels(ctx, issue, names)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


def remove_issue_label(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
    label = next((x for x in issue.labels if x.name.lower() == ctx.params["name"].lower()), None)
    if label is None:
        raise ApiError(404, "Label does not exist")
    _remove_label(ctx, issue, label)
    return 200, [ctx.hub.payloads.label(repo, x) for x in issue.labels]


# -- comments and reactions ------------------------------------------------------------------


def _comment(ctx: Ctx, repo: Repo) -> Comment:
    comment = ctx.state.comments.get(ctx.int_param("comment_id"))
    if comment is None or comment.issue.repo is not repo:
        raise not_found()
    return comment


def _emit_comment(ctx: Ctx, comment: Comment, action: str, **extra: Any) -> None:
    body = {
        "action": action,
        "issue": ctx.hub.payloads.issue(comment.issue),
        "comment": ctx.hub.payloads.comment(comment),
        **extra,
    }
    ctx.hub.emit(comment.issue.repo, "issue_comment", body, ctx.actor.user)


def list_comments(ctx: Ctx) -> Result:
    from fakehub.api import paginate

    repo = ctx.repo("issues")
    issue = _issue(ctx, repo)
    found = sorted((c for c in ctx.state.comments.values() if c.issue is issue), key=lambda c: c.id)
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.comment(c) for c in chunk], headers


def create_comment(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
    text = ctx.field("body", str, required=True)
    app = ctx.actor.app if ctx.actor.kind == "installation" else None
    comment = ctx.state.add_comment(issue, ctx.actor.user, text, app)
    _emit_comment(ctx, comment, "created")
    return 201, ctx.hub.payloads.comment(comment)


def get_comment(ctx: Ctx) -> Result:
    repo = ctx.repo("issues")
    return 200, ctx.hub.payloads.comment(_comment(ctx, repo))


def update_comment(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    comment = _comment(ctx, repo)
    text = ctx.field("body", str, required=True)
    old = comment.body
    comment.body, comment.updated_at = text, time.time()
    _emit_comment(ctx, comment, "edited", changes={"body": {"from": old}})
    return 200, ctx.hub.payloads.comment(comment)


def delete_comment(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    comment = _comment(ctx, repo)
    with ctx.state.lock:
        del ctx.state.comments[comment.id]
        comment.issue.comments -= 1
    _emit_comment(ctx, comment, "deleted")
    return 204, None


def _react(ctx: Ctx, reactions: list[Reaction]) -> Result:
    content = ctx.field("content", str, required=True)
    if content not in REACTIONS:
        raise _validation("content", resource="Reaction")
    with ctx.state.lock:
        for existing in reactions:
            if existing.user is ctx.actor.user and existing.content == content:
                return 200, ctx.hub.payloads.reaction(existing)
        reaction = Reaction(ctx.state.next_id(), ctx.actor.user, content)
        reactions.append(reaction)
    return 201, ctx.hub.payloads.reaction(reaction)


def react_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    return _react(ctx, _issue(ctx, repo).reactions)


def react_comment(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    return _react(ctx, _comment(ctx, repo).reactions)


# -- dependencies and sub-issues ---------------------------------------------------------------


def _other_issue(ctx: Ctx, issue_id: Any) -> Issue:
    if not isinstance(issue_id, int) or isinstance(issue_id, bool):
        raise _validation("issue_id")
    other = ctx.state.issues_by_id.get(issue_id)
    if other is None or other.pull is not None:
        raise not_found()
    from fakehub.auth import require_repo

    require_repo(ctx.state, ctx.actor, other.repo, "issues", "read")
    return other


def list_blocked_by(ctx: Ctx) -> Result:
    from fakehub.api import paginate

    repo = ctx.repo("issues")
    issue = _issue(ctx, repo)
    found = [ctx.state.issues_by_id[i] for i in issue.blocked_by if i in ctx.state.issues_by_id]
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.issue(i, with_repo=True) for i in chunk], headers


def list_blocking(ctx: Ctx) -> Result:
    from fakehub.api import paginate

    repo = ctx.repo("issues")
    issue = _issue(ctx, repo)
    found = sorted(
        (i for i in ctx.state.issues_by_id.values() if issue.id in i.blocked_by), key=lambda i: i.id
    )
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.issue(i, with_repo=True) for i in chunk], headers


def _emit_dependency(ctx: Ctx, blocked: Issue, blocking: Issue, added: bool) -> None:
    p = ctx.hub.payloads
    verb = "added" if added else "removed"
    common = {
        "blocked_issue_id": blocked.id,
        "blocked_issue": p.issue(blocked),
        "blocking_issue_id": blocking.id,
        "blocking_issue": p.issue(blocking),
    }
    ctx.hub.emit(
        blocked.repo,
        "issue_dependencies",
        {"action": f"blocked_by_{verb}", **common, "blocking_issue_repo": p.repo(blocking.repo)},
        ctx.actor.user,
    )
    ctx.hub.emit(
        blocking.repo,
        "issue_dependencies",
        {"action": f"blocking_{verb}", **common, "blocked_issue_repo": p.repo(blocked.repo)},
        ctx.actor.user,
    )


def add_blocked_by(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
    blocker = _other_issue(ctx, ctx.field("issue_id", int, required=True))
    with ctx.state.lock:
        if blocker is issue:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueDependency",
                        "code": "custom",
                        "message": "An issue cannot be blocked by itself",
                    }
                ],
            )
        if blocker.id in issue.blocked_by:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueDependency",
                        "code": "custom",
                        "message": "This dependency already exists",
                    }
                ],
            )
        if len(issue.blocked_by) >= 50:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueDependency",
                        "code": "custom",
                        "message": "An issue can be blocked by at most 50 issues",
                    }
                ],
            )
        issue.blocked_by.append(blocker.id)
        issue.updated_at = time.time()
    _emit_dependency(ctx, issue, blocker, True)
    return 201, ctx.hub.payloads.issue(blocker)


def remove_blocked_by(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = _issue(ctx, repo)
    blocker_id = ctx.int_param("issue_id")
    with ctx.state.lock:
        if blocker_id not in issue.blocked_by:
            raise not_found()
        issue.blocked_by.remove(blocker_id)
        blocker = ctx.state.issues_by_id[blocker_id]
    _emit_dependency(ctx, issue, blocker, False)
    return 200, ctx.hub.payloads.issue(blocker)


def _emit_sub_issue(ctx: Ctx, parent: Issue, child: Issue, added: bool) -> None:
    p = ctx.hub.payloads
    verb = "added" if added else "removed"
    common = {
        "sub_issue_id": child.id,
        "sub_issue": p.issue(child),
        "sub_issue_repo": p.repo(child.repo),
        "parent_issue_id": parent.id,
        "parent_issue": p.issue(parent),
        "parent_issue_repo": p.repo(parent.repo),
    }
    ctx.hub.emit(
        parent.repo, "sub_issues", {"action": f"sub_issue_{verb}", **common}, ctx.actor.user
    )
    ctx.hub.emit(
        child.repo, "sub_issues", {"action": f"parent_issue_{verb}", **common}, ctx.actor.user
    )


def list_sub_issues(ctx: Ctx) -> Result:
    from fakehub.api import paginate

    repo = ctx.repo("issues")
    issue = _issue(ctx, repo)
    found = [ctx.state.issues_by_id[i] for i in issue.children]
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.issue(i) for i in chunk], headers


def add_sub_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    parent = _issue(ctx, repo)
    child_id = ctx.field("sub_issue_id", int, required=True)
    child = _other_issue(ctx, child_id)
    with ctx.state.lock:
        if child.repo.owner is not parent.repo.owner or child is parent:
            raise _validation("sub_issue_id")
        if child.parent is not None and not ctx.field("replace_parent", bool):
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "Issue",
                        "code": "custom",
                        "message": "Sub issue may only have one parent",
                    }
                ],
            )
        if child.parent is not None:
            ctx.state.issues_by_id[child.parent].children.remove(child.id)
        child.parent = parent.id
        parent.children.append(child.id)
    _emit_sub_issue(ctx, parent, child, True)
    return 201, ctx.hub.payloads.issue(parent)


def remove_sub_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    parent = _issue(ctx, repo)
    child_id = ctx.field("sub_issue_id", int, required=True)
    with ctx.state.lock:
        if child_id not in parent.children:
            raise not_found()
        parent.children.remove(child_id)
        child = ctx.state.issues_by_id[child_id]
        child.parent = None
    _emit_sub_issue(ctx, parent, child, False)
    return 200, ctx.hub.payloads.issue(child)


def list_issue_events(ctx: Ctx) -> Result:
    """The issue's timeline of label events (``labeled`` / ``unlabeled``), oldest first."""
    from fakehub.api import paginate

    repo = ctx.repo("issues")
    issue = _issue(ctx, repo)
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


def get_parent(ctx: Ctx) -> Result:
    repo = ctx.repo("issues")
    issue = _issue(ctx, repo)
    if issue.parent is None:
        raise not_found()
    return 200, ctx.hub.payloads.issue(ctx.state.issues_by_id[issue.parent])


_I = "/repos/{owner}/{repo}/issues"
TABLE: list[tuple[str, list[str], Any]] = [
    (_I, ["POST"], create_issue),
    (_I, ["GET"], list_issues),
    (_I + "/comments/{comment_id}/reactions", ["POST"], react_comment),
    (_I + "/comments/{comment_id}", ["GET"], get_comment),
    (_I + "/comments/{comment_id}", ["PATCH"], update_comment),
    (_I + "/comments/{comment_id}", ["DELETE"], delete_comment),
    (_I + "/{issue_number}", ["GET"], get_issue),
    (_I + "/{issue_number}", ["PATCH"], update_issue),
    (_I + "/{issue_number}/labels", ["GET"], list_issue_labels),
    (_I + "/{issue_number}/labels", ["POST"], add_issue_labels),
    (_I + "/{issue_number}/labels", ["PUT"], set_issue_labels),
    (_I + "/{issue_number}/labels/{name:path}", ["DELETE"], remove_issue_label),
    (_I + "/{issue_number}/comments", ["GET"], list_comments),
    (_I + "/{issue_number}/events", ["GET"], list_issue_events),
    (_I + "/{issue_number}/comments", ["POST"], create_comment),
    (_I + "/{issue_number}/reactions", ["POST"], react_issue),
    (_I + "/{issue_number}/dependencies/blocked_by", ["GET"], list_blocked_by),
    (_I + "/{issue_number}/dependencies/blocked_by", ["POST"], add_blocked_by),
    (_I + "/{issue_number}/dependencies/blocked_by/{issue_id}", ["DELETE"], remove_blocked_by),
    (_I + "/{issue_number}/dependencies/blocking", ["GET"], list_blocking),
    (_I + "/{issue_number}/sub_issues", ["GET"], list_sub_issues),
    (_I + "/{issue_number}/sub_issues", ["POST"], add_sub_issue),
    (_I + "/{issue_number}/sub_issue", ["DELETE"], remove_sub_issue),
    (_I + "/{issue_number}/parent", ["GET"], get_parent),
    ("/repos/{owner}/{repo}/labels", ["GET"], list_labels),
    ("/repos/{owner}/{repo}/labels", ["POST"], create_label),
    ("/repos/{owner}/{repo}/labels/{name:path}", ["GET"], get_label),
]
