"""Issue comment and reaction routes."""

from __future__ import annotations

import time
from typing import Any

from fakehub.auth import not_found
from fakehub.payloads_issues import REACTIONS
from fakehub.records import Comment, Reaction, Repo
from fakehub.rest.context import Ctx, Result, paginate
from fakehub.rest.issues import find_issue, validation_error


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

    repo = ctx.repo("issues")
    issue = find_issue(ctx, repo)
    found = sorted((c for c in ctx.state.comments.values() if c.issue is issue), key=lambda c: c.id)
    chunk, headers = paginate(ctx, found)
    return 200, [ctx.hub.payloads.comment(c) for c in chunk], headers


def create_comment(ctx: Ctx) -> Result:
    # As on GitHub: anyone who can read the repository may comment on its issues; an App's
    # installation token needs issues: write.
    repo = ctx.repo("issues", "write" if ctx.actor.kind != "user" else "read")
    issue = find_issue(ctx, repo)
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
        raise validation_error("content", resource="Reaction")
    with ctx.state.lock:
        for existing in reactions:
            if existing.user is ctx.actor.user and existing.content == content:
                return 200, ctx.hub.payloads.reaction(existing)
        reaction = Reaction(ctx.state.next_id(), ctx.actor.user, content)
        reactions.append(reaction)
    return 201, ctx.hub.payloads.reaction(reaction)


def react_issue(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    return _react(ctx, find_issue(ctx, repo).reactions)


def react_comment(ctx: Ctx) -> Result:
    repo = ctx.repo("issues", "write")
    return _react(ctx, _comment(ctx, repo).reactions)


_I = "/repos/{owner}/{repo}/issues"
TABLE: list[tuple[str, list[str], Any]] = [
    (_I + "/comments/{comment_id}/reactions", ["POST"], react_comment),
    (_I + "/comments/{comment_id}", ["GET"], get_comment),
    (_I + "/comments/{comment_id}", ["PATCH"], update_comment),
    (_I + "/comments/{comment_id}", ["DELETE"], delete_comment),
    (_I + "/{issue_number}/comments", ["GET"], list_comments),
    (_I + "/{issue_number}/comments", ["POST"], create_comment),
    (_I + "/{issue_number}/reactions", ["POST"], react_issue),
]
