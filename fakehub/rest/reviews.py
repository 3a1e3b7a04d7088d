"""Pull request review routes: submit, list, read and dismiss reviews, and list review
comments."""

from __future__ import annotations

import time
from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import Issue, Review
from fakehub.rest.context import Ctx, Result, paginate
from fakehub.rest.pulls import find_pull

REVIEW_EVENTS = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}


def _review_error(message: str) -> ApiError:
    return ApiError(
        422,
        "Unprocessable Entity",
        errors=[{"resource": "PullRequestReview", "code": "custom", "message": message}],
    )


def _review(ctx: Ctx, pull: Issue) -> Review:
    review = ctx.state.reviews.get(ctx.int_param("review_id"))
    if review is None or review.pull is not pull:
        raise not_found()
    return review


def _emit_review(ctx: Ctx, review: Review, action: str) -> None:
    body = {
        "action": action,
        "review": ctx.hub.payloads.review(review, webhook=True),
        "pull_request": ctx.hub.pull_json(review.pull),
    }
    ctx.hub.emit(review.pull.repo, "pull_request_review", body, ctx.actor.user)


def create_review(ctx: Ctx) -> Result:
    """Submit a review at once (``event`` given); fakehub keeps no pending reviews.

    Anyone who can read the repository may review; an App needs pull requests write. Comments
    are anchored by ``line`` or ``position`` on a file the pull request changes.
    """
    installation = ctx.actor.kind == "installation"
    repo = ctx.repo("pull_requests", "write" if installation else "read")
    pull = find_pull(ctx, repo)
    assert pull.pull is not None
    event = ctx.field("event", str)
    if event not in REVIEW_EVENTS:
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "PullRequestReview", "field": "event", "code": "invalid"}],
        )
    body = ctx.field("body", str) or ""
    if event != "APPROVE" and not body.strip():
        raise _review_error(f"Body is required when using {event}")  # GitHub's own rule
    if event != "COMMENT" and ctx.actor.user is pull.user:
        verb = "approve" if event == "APPROVE" else "request changes on"
        raise _review_error(f"Can not {verb} your own pull request")
    commit_id = ctx.field("commit_id", str) or pull.pull.head_sha
    try:
        commit_id = ctx.hub.store.commit_info(repo.full_name, commit_id).sha
    except Exception:
        raise _review_error("Commit could not be resolved") from None
    raw = ctx.field("comments", list) or []
    comments: list[tuple[str, str, int | None, int | None]] = []
    if raw:
        changed = {
            f["filename"]
            for f in ctx.hub.store.changed_files(repo.full_name, ctx.hub.base_sha(pull), commit_id)
        }
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("body"), str):
                raise _review_error("Each comment needs a path and a body")
            path, line, position = item.get("path"), item.get("line"), item.get("position")
            if path not in changed:
                raise _review_error("Path could not be resolved")
            if not isinstance(line, int) and not isinstance(position, int):
                raise _review_error("Line could not be resolved")
            comments.append(
                (
                    str(path),
                    item["body"],
                    line if isinstance(line, int) else None,
                    position if isinstance(position, int) else None,
                )
            )
    review = ctx.state.add_review(
        pull, ctx.actor.user, REVIEW_EVENTS[event], body, commit_id, comments
    )
    ctx.state.record(
        "review_submitted",
        repo=repo.full_name,
        pr=pull.number,
        review=review.id,
        state=review.state,
        by=ctx.actor.user.login,
    )
    _emit_review(ctx, review, "submitted")
    return 200, ctx.hub.payloads.review(review)


def list_reviews(ctx: Ctx) -> Result:

    repo = ctx.repo("pull_requests")
    pull = find_pull(ctx, repo)
    chunk, headers = paginate(ctx, ctx.state.reviews_for(pull))
    return 200, [ctx.hub.payloads.review(r) for r in chunk], headers


def get_review(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests")
    return 200, ctx.hub.payloads.review(_review(ctx, find_pull(ctx, repo)))


def dismiss_review(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests", "write")
    review = _review(ctx, find_pull(ctx, repo))
    ctx.field("message", str, required=True)
    if review.state not in ("APPROVED", "CHANGES_REQUESTED"):
        raise _review_error(f"Can not dismiss a {review.state.lower()} pull request review")
    with ctx.state.lock:
        review.state = "DISMISSED"
        review.updated_at = time.time()
    ctx.state.record(
        "review_dismissed",
        repo=repo.full_name,
        pr=review.pull.number,
        review=review.id,
        by=ctx.actor.user.login,
    )
    _emit_review(ctx, review, "dismissed")
    return 200, ctx.hub.payloads.review(review)


def list_review_comments(ctx: Ctx) -> Result:

    repo = ctx.repo("pull_requests")
    pull = find_pull(ctx, repo)
    chunk, headers = paginate(ctx, ctx.state.review_comments_for(pull))
    return 200, [ctx.hub.payloads.review_comment(c) for c in chunk], headers


_P = "/repos/{owner}/{repo}/pulls"
TABLE: list[tuple[str, list[str], Any]] = [
    (_P + "/{pull_number}/reviews", ["POST"], create_review),
    (_P + "/{pull_number}/reviews", ["GET"], list_reviews),
    (_P + "/{pull_number}/reviews/{review_id}", ["GET"], get_review),
    (_P + "/{pull_number}/reviews/{review_id}/dismissals", ["PUT"], dismiss_review),
    (_P + "/{pull_number}/comments", ["GET"], list_review_comments),
]
