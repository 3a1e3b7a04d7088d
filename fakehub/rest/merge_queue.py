"""Asynchronous merges and GitHub's merge queue: ``PUT .../pulls/{n}/merge-async`` and
``GET .../pulls/{n}/merge-async/{uuid}`` (the queue itself is ``fakehub.merge_queue``)."""

from __future__ import annotations

from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.rest.context import Ctx, Result
from fakehub.rest.pulls import find_pull

ACTIONS = ("default", "direct_merge", "merge_queue")
METHODS = ("merge", "squash", "rebase")


def merge_async(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    issue = find_pull(ctx, repo)
    action = ctx.field("merge_action", str) or "default"
    method = ctx.field("merge_method", str) or "merge"
    if action not in ACTIONS or method not in METHODS:
        field = "merge_action" if action not in ACTIONS else "merge_method"
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "PullRequest", "field": field, "code": "invalid"}],
        )
    status, body = ctx.hub.queue.merge_async(
        issue, ctx.actor.user, sha=ctx.field("sha", str), action=action, method=method
    )
    return status, body


def merge_async_result(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests")
    issue = find_pull(ctx, repo)
    found = ctx.hub.queue.result(issue, ctx.params["uuid"])
    if found is None:
        raise not_found()
    return 200, found


_P = "/repos/{owner}/{repo}/pulls/{pull_number}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_P + "/merge-async", ["PUT"], merge_async),
    (_P + "/merge-async/{uuid}", ["GET"], merge_async_result),
]
