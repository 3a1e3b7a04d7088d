"""Check run and commit status routes."""

from __future__ import annotations

from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import CheckRun, Repo
from fakehub.rest.context import Ctx, Result, paginate

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


def rerequest_check_run(ctx: Ctx) -> Result:
    """GitHub answers 201 ``{}``; 403 when the run belongs to another App (fakehub's CI is
    the exception: it re-runs for any App, as a re-run of failed Actions jobs would), 422 while
    the run has not completed."""
    repo = ctx.repo("checks", "write")
    app = _check_app(ctx)
    run = _run(ctx, repo)
    if run.app is not app and run.app is not ctx.hub.ci_app:
        raise ApiError(
            403, "This check run is not rerequestable or doesn't belong to the authenticated app."
        )
    if run.status != "completed":
        raise ApiError(422, "This check run is not rerequestable.")
    ctx.hub.rerequest_check_run(run, app)
    return 201, {}


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

    repo = ctx.repo("statuses")
    sha = _resolve_ref(ctx, repo)
    chunk, headers = paginate(ctx, ctx.state.statuses_for(repo, sha))
    return 200, [ctx.hub.payloads.status(s) for s in chunk], headers


_R = "/repos/{owner}/{repo}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_R + "/check-runs", ["POST"], create_check_run),
    (_R + "/check-runs/{check_run_id}", ["PATCH"], update_check_run),
    (_R + "/check-runs/{check_run_id}", ["GET"], get_check_run),
    (_R + "/check-runs/{check_run_id}/rerequest", ["POST"], rerequest_check_run),
    (_R + "/commits/{ref:path}/check-runs", ["GET"], list_check_runs),
    (_R + "/commits/{ref:path}/check-suites", ["GET"], list_check_suites),
    (_R + "/commits/{ref:path}/statuses", ["GET"], list_statuses),
    (_R + "/commits/{ref:path}/status", ["GET"], combined_status),
    (_R + "/statuses/{sha}", ["POST"], create_status),
]
