"""Pull request, review, check run and commit status routes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fakehub.auth import ApiError, not_found
from fakehub.state import CheckRun, Issue, Repo, Review

if TYPE_CHECKING:
    from fakehub.api import Ctx, Result

CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)


def _pull(ctx: Ctx, repo: Repo) -> Issue:
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
    from fakehub.api import paginate

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
    return 200, ctx.hub.pull_json(_pull(ctx, repo))


def update_pull(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests", "write")
    issue = _pull(ctx, repo)
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
    from fakehub.api import paginate

    repo = ctx.repo("pull_requests")
    issue = _pull(ctx, repo)
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
    issue = _pull(ctx, repo)
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
    issue = _pull(ctx, repo)
    assert issue.pull is not None
    if not issue.pull.merged:
        raise not_found()
    return 204, None


def update_branch(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    issue = _pull(ctx, repo)
    if issue.state != "open":
        raise ApiError(422, "Pull request is not open")
    ctx.hub.update_branch(issue, ctx.actor.user, ctx.field("expected_head_sha", str))
    return 202, {
        "message": "Updating pull request branch.",
        "url": f"{ctx.hub.url}/{repo.full_name}/pull/{issue.number}",
    }


# -- reviews ---------------------------------------------------------------------------------

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
    pull = _pull(ctx, repo)
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
    from fakehub.api import paginate

    repo = ctx.repo("pull_requests")
    pull = _pull(ctx, repo)
    chunk, headers = paginate(ctx, ctx.state.reviews_for(pull))
    return 200, [ctx.hub.payloads.review(r) for r in chunk], headers


def get_review(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests")
    return 200, ctx.hub.payloads.review(_review(ctx, _pull(ctx, repo)))


def dismiss_review(ctx: Ctx) -> Result:
    repo = ctx.repo("pull_requests", "write")
    review = _review(ctx, _pull(ctx, repo))
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
    from fakehub.api import paginate

    repo = ctx.repo("pull_requests")
    pull = _pull(ctx, repo)
    chunk, headers = paginate(ctx, ctx.state.review_comments_for(pull))
    return 200, [ctx.hub.payloads.review_comment(c) for c in chunk], headers


# -- checks ----------------------------------------------------------------------------------


def _check_app(ctx: Ctx) -> Any:
    if ctx.actor.kind != "installation" or ctx.actor.app is None:
        raise ApiError(403, "You must authenticate via a GitHub App.")
    return ctx.actor.app


def _run(ctx: Ctx, repo: Repo) -> CheckRun:
    run = ctx.state.check_runs.get(ctx.int_param("check_run_id"))
    if run is None or run.repo is not repo:
        raise not_found()
    return run


def _run_json(ctx: Ctx, run: CheckRun) -> dict[str, Any]:
    body = ctx.hub.payloads.check_run(run, pulls=ctx.hub.pulls_for_sha(run.repo, run.head_sha))
    return body


def create_check_run(ctx: Ctx) -> Result:
    repo = ctx.repo("checks", "write")
    app = _check_app(ctx)
    name = ctx.field("name", str, required=True)
    head_sha = ctx.field("head_sha", str, required=True)
    status = ctx.field("status", str) or "queued"
    conclusion = ctx.field("conclusion", str)
    if status not in CHECK_STATUSES or (conclusion and conclusion not in CONCLUSIONS):
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "CheckRun", "field": "status", "code": "invalid"}],
        )
    if status == "completed" and not conclusion:
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "CheckRun", "field": "conclusion", "code": "missing_field"}],
        )
    try:
        ctx.hub.store.commit_info(repo.full_name, head_sha)
    except Exception:
        raise ApiError(422, "No commit found for SHA: " + head_sha) from None
    run = ctx.hub.create_check_run(
        repo,
        app,
        name=name,
        head_sha=head_sha,
        status=status,
        conclusion=conclusion,
        output=ctx.field("output", dict),
        details_url=ctx.field("details_url", str),
        external_id=ctx.field("external_id", str),
    )
    return 201, _run_json(ctx, run)


def update_check_run(ctx: Ctx) -> Result:
    repo = ctx.repo("checks", "write")
    app = _check_app(ctx)
    run = _run(ctx, repo)
    if run.app is not app:
        raise ApiError(
            403, f"Invalid app_id `{app.id}` - check run can only be modified by its creator."
        )
    changes = ctx.body if isinstance(ctx.body, dict) else {}
    if changes.get("conclusion") and changes["conclusion"] not in CONCLUSIONS:
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "CheckRun", "field": "conclusion", "code": "invalid"}],
        )
    ctx.hub.update_check_run(run, changes)
    return 200, _run_json(ctx, run)


def get_check_run(ctx: Ctx) -> Result:
    repo = ctx.repo("checks")
    return 200, _run_json(ctx, _run(ctx, repo))


def _resolve_ref(ctx: Ctx, repo: Repo) -> str:
    ref = ctx.params["ref"]
    for candidate in (ref, ref.removeprefix("heads/"), ref.removeprefix("refs/heads/")):
        sha = ctx.hub.store.ref_sha(repo.full_name, candidate)
        if sha:
            return sha
    try:
        return ctx.hub.store.commit_info(repo.full_name, ref).sha
    except Exception:
        raise ApiError(422, f"No commit found for SHA: {ref}") from None


def list_check_runs(ctx: Ctx) -> Result:
    from fakehub.api import paginate

    repo = ctx.repo("checks")
    sha = _resolve_ref(ctx, repo)
    runs = sorted(ctx.state.runs_for(repo, sha), key=lambda r: r.id, reverse=True)
    name = ctx.query.get("check_name")
    if name:
        runs = [r for r in runs if r.name == name]
    if ctx.query.get("filter", "latest") == "latest":
        seen: set[tuple[int, str]] = set()
        latest = []
        for r in runs:
            if (r.app.id, r.name) not in seen:
                seen.add((r.app.id, r.name))
                latest.append(r)
        runs = latest
    chunk, headers = paginate(ctx, runs)
    return (
        200,
        {"total_count": len(runs), "check_runs": [_run_json(ctx, r) for r in chunk]},
        headers,
    )


def list_check_suites(ctx: Ctx) -> Result:
    repo = ctx.repo("checks")
    sha = _resolve_ref(ctx, repo)
    suites = [s for s in ctx.state.check_suites.values() if s.repo is repo and s.head_sha == sha]
    pulls = ctx.hub.pulls_for_sha(repo, sha)
    head = ctx.hub.simple_commit(repo, sha)
    return 200, {
        "total_count": len(suites),
        "check_suites": [
            ctx.hub.payloads.check_suite(s, pulls=pulls, head_commit=head) for s in suites
        ],
    }


# -- statuses --------------------------------------------------------------------------------


def create_status(ctx: Ctx) -> Result:
    repo = ctx.repo("statuses", "write")
    sha = ctx.params["sha"]
    state = ctx.field("state", str, required=True)
    if state not in ("error", "failure", "pending", "success"):
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "Status", "field": "state", "code": "custom"}],
        )
    try:
        sha = ctx.hub.store.commit_info(repo.full_name, sha).sha
    except Exception:
        raise ApiError(422, f"No commit found for SHA: {sha}") from None
    body = dict(ctx.body) if isinstance(ctx.body, dict) else {}
    status = ctx.hub.add_status(repo, sha, ctx.actor.user, body)
    return 201, ctx.hub.payloads.status(status)


def combined_status(ctx: Ctx) -> Result:
    repo = ctx.repo("statuses")
    sha = _resolve_ref(ctx, repo)
    latest: dict[str, Any] = {}
    for s in ctx.state.statuses_for(repo, sha):
        latest.setdefault(s.context, s)
    states = [s.state for s in latest.values()]
    if any(s in ("error", "failure") for s in states):
        overall = "failure"
    elif not states or any(s == "pending" for s in states):
        overall = "pending"
    else:
        overall = "success"
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    statuses = []
    for s in latest.values():
        body = ctx.hub.payloads.status(s)
        body.pop("creator")
        statuses.append(body)
    return 200, {
        "state": overall,
        "statuses": statuses,
        "sha": sha,
        "total_count": len(statuses),
        "repository": ctx.hub.payloads.repo(repo),
        "commit_url": f"{api}/commits/{sha}",
        "url": f"{api}/commits/{sha}/status",
    }


def list_statuses(ctx: Ctx) -> Result:
    from fakehub.api import paginate

    repo = ctx.repo("statuses")
    sha = _resolve_ref(ctx, repo)
    chunk, headers = paginate(ctx, ctx.state.statuses_for(repo, sha))
    return 200, [ctx.hub.payloads.status(s) for s in chunk], headers


_P = "/repos/{owner}/{repo}/pulls"
_R = "/repos/{owner}/{repo}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_P, ["POST"], create_pull),
    (_P, ["GET"], list_pulls),
    (_P + "/{pull_number}", ["GET"], get_pull),
    (_P + "/{pull_number}", ["PATCH"], update_pull),
    (_P + "/{pull_number}/files", ["GET"], list_files),
    (_P + "/{pull_number}/merge", ["PUT"], merge_pull),
    (_P + "/{pull_number}/merge", ["GET"], check_merged),
    (_P + "/{pull_number}/update-branch", ["PUT"], update_branch),
    (_P + "/{pull_number}/reviews", ["POST"], create_review),
    (_P + "/{pull_number}/reviews", ["GET"], list_reviews),
    (_P + "/{pull_number}/reviews/{review_id}", ["GET"], get_review),
    (_P + "/{pull_number}/reviews/{review_id}/dismissals", ["PUT"], dismiss_review),
    (_P + "/{pull_number}/comments", ["GET"], list_review_comments),
    (_R + "/check-runs", ["POST"], create_check_run),
    (_R + "/check-runs/{check_run_id}", ["PATCH"], update_check_run),
    (_R + "/check-runs/{check_run_id}", ["GET"], get_check_run),
    (_R + "/commits/{ref:path}/check-runs", ["GET"], list_check_runs),
    (_R + "/commits/{ref:path}/check-suites", ["GET"], list_check_suites),
    (_R + "/commits/{ref:path}/statuses", ["GET"], list_statuses),
    (_R + "/commits/{ref:path}/status", ["GET"], combined_status),
    (_R + "/statuses/{sha}", ["POST"], create_status),
]
