"""Issue dependency (blocked by / blocking) and sub-issue routes, with GitHub's limits: 100
sub-issues per parent (closed ones count) and 50 dependencies per relationship type (an issue
is blocked by at most 50 issues and blocks at most 50); over them, a 422."""

from __future__ import annotations

import time
from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import Issue
from fakehub.rest.context import Ctx, Result, paginate
from fakehub.rest.issues import find_issue, validation_error

SUB_ISSUES_PER_PARENT = 100
DEPENDENCIES_PER_TYPE = 50


def _other_issue(ctx: Ctx, issue_id: Any) -> Issue:
    if not isinstance(issue_id, int) or isinstance(issue_id, bool):
        raise validation_error("issue_id")
    other = ctx.state.issues_by_id.get(issue_id)
    if other is None or other.pull is not None:
        raise not_found()
    from fakehub.auth import require_repo

    require_repo(ctx.state, ctx.actor, other.repo, "issues", "read")
    return other


def list_blocked_by(ctx: Ctx) -> Result:

    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
    found = [ctx.state.issues_by_id[i] for i in issue.blocked_by if i in ctx.state.issues_by_id]
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.issue(i, with_repo=True) for i in chunk], headers


def list_blocking(ctx: Ctx) -> Result:

    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
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


def _dependency_limit(message: str) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": "IssueDependency", "code": "custom", "message": message}],
    )


def add_blocked_by(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = find_issue(ctx, repo)
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
        if len(issue.blocked_by) >= DEPENDENCIES_PER_TYPE:
            raise _dependency_limit(
                f"An issue can be blocked by at most {DEPENDENCIES_PER_TYPE} issues"
            )
        blocking = sum(blocker.id in i.blocked_by for i in ctx.state.issues_by_id.values())
        if blocking >= DEPENDENCIES_PER_TYPE:
            raise _dependency_limit(f"An issue can block at most {DEPENDENCIES_PER_TYPE} issues")
        issue.blocked_by.append(blocker.id)
        issue.updated_at = time.time()
    _emit_dependency(ctx, issue, blocker, True)
    return 201, ctx.hub.payloads.issue(blocker)


def remove_blocked_by(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    issue = find_issue(ctx, repo)
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

    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
    found = [ctx.state.issues_by_id[i] for i in issue.children]
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.issue(i) for i in chunk], headers


def add_sub_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    parent = find_issue(ctx, repo)
    child_id = ctx.field("sub_issue_id", int, required=True)
    child = _other_issue(ctx, child_id)
    with ctx.state.lock:
        if child.repo.owner is not parent.repo.owner or child is parent:
            raise validation_error("sub_issue_id")
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
        if len(parent.children) >= SUB_ISSUES_PER_PARENT:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "Issue",
                        "code": "custom",
                        "message": f"Parent cannot have more than {SUB_ISSUES_PER_PARENT} "
                        "sub-issues",
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
    parent = find_issue(ctx, repo)
    child_id = ctx.field("sub_issue_id", int, required=True)
    with ctx.state.lock:
        if child_id not in parent.children:
            raise not_found()
        parent.children.remove(child_id)
        child = ctx.state.issues_by_id[child_id]
        child.parent = None
    _emit_sub_issue(ctx, parent, child, False)
    return 200, ctx.hub.payloads.issue(child)


def get_parent(ctx: Ctx) -> Result:
    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
    if issue.parent is None:
        raise not_found()
    return 200, ctx.hub.payloads.issue(ctx.state.issues_by_id[issue.parent])


_I = "/repos/{owner}/{repo}/issues"
TABLE: list[tuple[str, list[str], Any]] = [
    (_I + "/{issue_number}/dependencies/blocked_by", ["GET"], list_blocked_by),
    (_I + "/{issue_number}/dependencies/blocked_by", ["POST"], add_blocked_by),
    (_I + "/{issue_number}/dependencies/blocked_by/{issue_id}", ["DELETE"], remove_blocked_by),
    (_I + "/{issue_number}/dependencies/blocking", ["GET"], list_blocking),
    (_I + "/{issue_number}/sub_issues", ["GET"], list_sub_issues),
    (_I + "/{issue_number}/sub_issues", ["POST"], add_sub_issue),
    (_I + "/{issue_number}/sub_issue", ["DELETE"], remove_sub_issue),
    (_I + "/{issue_number}/parent", ["GET"], get_parent),
]
