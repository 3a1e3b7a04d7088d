"""Pull request routes: open, list, read, edit, list files, merge and update the branch.

Review routes are in ``reviews.py`` (using :func:`find_pull` from here), check run and
commit status routes in ``checks.py``.
"""

from __future__ import annotations

import time
from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import Issue, Repo
from fakehub.rest.context import Ctx, Result, paginate


def find_pull(ctx: Ctx, repo: Repo) -> Issue:
    issue = ctx.state.issue(repo, ctx.int_param("pull_number"))
    if issue is None or issue.pull is None:
        raise not_found()
    return issue


def create_pull(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests", "write")
    head = ctx.field("head", str, required=True)
    base = ctx.field("base", str, required=True)
    title = ctx.field("title", str)
    if title is None:
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "PullRequest", "field": "title", "code": "missing_field"}],
        )
    owner, sep, branch = head.partition(":")
    if sep and owner.lower() != repo.owner.login.lower():
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}],
        )
    app = ctx.actor.app if ctx.actor.kind == "installation" else None
    issue = ctx.hub.open_pull(
        repo,
        ctx.actor.user,
        app,
        title=title,
        head=branch if sep else head,
        base=base,
        body=ctx.field("body", str),
        draft=bool(ctx.field("draft", bool)),
    )
    return 201, ctx.hub.pull_json(issue)


def list_pulls(ctx: Ctx) -> Result:

    repo = ctx.repo("pull_requests")
    state = ctx.query.get("state", "open")
    head = ctx.query.get("head")
    base = ctx.query.get("base")
    with ctx.state.lock:
        found = [
            i
            for i in repo.issues.values()
            if i.pull is not None
            and (state == "all" or i.state == state)
            and (base is None or i.pull.base_ref == base)
            and (head is None or f"{repo.owner.login}:{i.pull.head_ref}".lower() == head.lower())
        ]
    found.sort(key=lambda i: i.number, reverse=ctx.query.get("direction", "desc") == "desc")
    chunk, headers = paginate(ctx, found)
    # The list shape is pull-request-simple: no merge state or diff statistics.
    items = []
    for i in chunk:
        body = ctx.hub.pull_json(i, stats=False)
        for key in (
            "merged",
            "mergeable",
            "rebaseable",
            "mergeable_state",
            "merged_by",
            "comments",
            "review_comments",
            "maintainer_can_modify",
            "commits",
            "additions",
            "deletions",
            "changed_files",
        ):
            body.pop(key, None)
        items.append(body)
    return 200, items, headers


def get_pull(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests")
    return 200, ctx.hub.pull_json(find_pull(ctx, repo))


def update_pull(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests", "write")
    issue = find_pull(ctx, repo)
    assert issue.pull is not None
    changes: dict[str, Any] = {}
    title = ctx.field("title", str)
    if title is not None and title != issue.title:
        changes["title"] = {"from": issue.title}
        issue.title = title
    if isinstance(ctx.body, dict) and "body" in ctx.body:
        body = ctx.field("body", str)
        if body != issue.body:
            changes["body"] = {"from": issue.body or ""}
            issue.body = body
    base = ctx.field("base", str)
    if base is not None and base != issue.pull.base_ref:
        if ctx.hub.store.ref_sha(repo.full_name, base) is None:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}],
            )
        changes["base"] = {
            "ref": {"from": issue.pull.base_ref},
            "sha": {"from": ctx.hub.base_sha(issue)},
        }
        issue.pull.base_ref = base
    if changes:
        issue.updated_at = time.time()
        ctx.hub.emit_pull(issue, "edited", ctx.actor.user, changes=changes)
    state = ctx.field("state", str)
    if state in ("open", "closed"):
        if state == "open" and issue.pull.merged:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "state", "code": "invalid"}],
            )
        ctx.hub.set_pull_state(issue, state, ctx.actor.user)
    elif state is not None:
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "PullRequest", "field": "state", "code": "invalid"}],
        )
    return 200, ctx.hub.pull_json(issue)


def list_files(ctx: Ctx) -> Result:

    repo = ctx.repo("pull_requests")
    issue = find_pull(ctx, repo)
    assert issue.pull is not None
    head = issue.pull.head_sha
    files = ctx.hub.store.changed_files(repo.full_name, ctx.hub.base_sha(issue), head)
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    html = f"{ctx.hub.url}/{repo.full_name}"
    items = []
    for f in files:
        name = f["filename"]
        items.append(
            {
                "sha": f.get("sha") or head,
                "filename": name,
                "status": f["status"],
                "additions": f["additions"],
                "deletions": f["deletions"],
                "changes": f["changes"],
                "blob_url": f"{html}/blob/{head}/{name}",
                "raw_url": f"{html}/raw/{head}/{name}",
                "contents_url": f"{api}/contents/{name}?ref={head}",
                **({"patch": f["patch"]} if f.get("patch") else {}),
            }
        )
    chunk, headers = paginate(ctx, items)
    return 200, chunk, headers


def merge_pull(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    issue = find_pull(ctx, repo)
    ctx.state.record("merge_requested", repo=repo.full_name, pr=issue.number)
    method = ctx.field("merge_method", str) or "merge"
    sha = ctx.hub.merge(
        issue,
        ctx.actor.user,
        sha=ctx.field("sha", str),
        method=method,
        title=ctx.field("commit_title", str),
        message=ctx.field("commit_message", str),
    )
    return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}


def check_merged(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests")
    issue = find_pull(ctx, repo)
    assert issue.pull is not None
    if not issue.pull.merged:
        raise not_found()
    return 204, None


def update_branch(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    issue = find_pull(ctx, repo)
    if issue.state != "open":
        raise ApiError(422, "Pull request is not open")
    ctx.hub.update_branch(issue, ctx.actor.user, ctx.field("expected_head_sha", str))
    return 202, {
        "message": "Updating pull request branch.",
        "url": f"{ctx.hub.url}/{repo.full_name}/pull/{issue.number}",
    }


_P = "/repos/{owner}/{repo}/pulls"
TABLE: list[tuple[str, list[str], Any]] = [
    (_P, ["POST"], create_pull),
    (_P, ["GET"], list_pulls),
    (_P + "/{pull_number}", ["GET"], get_pull),
    (_P + "/{pull_number}", ["PATCH"], update_pull),
    (_P + "/{pull_number}/files", ["GET"], list_files),
    (_P + "/{pull_number}/merge", ["PUT"], merge_pull),
    (_P + "/{pull_number}/merge", ["GET"], check_merged),
    (_P + "/{pull_number}/update-branch", ["PUT"], update_branch),
]
