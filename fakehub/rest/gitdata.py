"""Git refs and merges through the REST API: create a ref, update one (forced or as a
fast-forward only), and merge a commit into a branch (``POST /repos/{o}/{r}/merges``).

GitHub's answers, as a merge bot sees them (bors-ng, homu): creating a ref that exists is 422
"Reference already exists"; a non-forced update that is not a fast-forward is 422 "Update is not
a fast forward"; an unknown commit is 422 "Object does not exist"; a merge with conflicts is 409
"Merge conflict"; a merge whose head the base already contains is 204; a missing base or head
is 404. Every ref that moves goes through :meth:`~fakehub.hub.Hub.on_branch_moved` like a push
over git: ``push`` webhook, pull request sync, CI, pull requests merged by the push.
"""

from __future__ import annotations

from typing import Any

from fakehub.auth import ApiError
from fakehub.gitstore import ZERO_SHA, Identity, MergeConflict, NotFastForward, NotFound, RefMoved
from fakehub.records import Repo
from fakehub.rest.context import Ctx, Result
from fakehub.rest.repos import commit_json


def _ref_json(ctx: Ctx, repo: Repo, name: str, sha: str) -> dict[str, Any]:
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    return {
        "ref": f"refs/heads/{name}",
        "node_id": f"REF_{repo.id}_{name}",
        "url": f"{api}/git/refs/heads/{name}",
        "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"},
    }


def _commit(ctx: Ctx, repo: Repo, sha: str) -> str:
    store = ctx.hub.store
    try:
        store.commit_info(repo.full_name, sha)
    except NotFound:
        raise ApiError(422, "Object does not exist") from None
    return sha


def create_ref(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    ref = ctx.field("ref", str, required=True)
    sha = ctx.field("sha", str, required=True)
    if not ref.startswith("refs/") or ref.count("/") < 2:
        raise ApiError(422, "Reference name must start with 'refs/' and have at least two slashes.")
    if not ref.startswith("refs/heads/"):
        raise ApiError(422, "Reference update failed")  # fakehub keeps branches only
    name = ref.removeprefix("refs/heads/")
    _commit(ctx, repo, sha)
    try:
        ctx.hub.store.create_branch(repo.full_name, name, sha)
    except RefMoved:
        raise ApiError(422, "Reference already exists") from None
    ctx.hub.on_branch_moved(repo, ref, ZERO_SHA, sha, ctx.actor.user)
    return 201, _ref_json(ctx, repo, name, sha)


def update_ref(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    name = ctx.params["branch"]
    sha = ctx.field("sha", str, required=True)
    force = bool(ctx.field("force", bool))
    _commit(ctx, repo, sha)
    try:
        before = ctx.hub.store.move_branch(repo.full_name, name, sha, force=force)
    except NotFound:
        raise ApiError(422, "Reference does not exist") from None
    except NotFastForward:
        ctx.state.record(
            "ref_update_refused", repo=repo.full_name, ref=f"refs/heads/{name}", sha=sha
        )
        raise ApiError(422, "Update is not a fast forward") from None
    except RefMoved:
        raise ApiError(422, "Reference cannot be updated") from None
    if before != sha:
        ctx.hub.on_branch_moved(repo, f"refs/heads/{name}", before, sha, ctx.actor.user)
    return 200, _ref_json(ctx, repo, name, sha)


def merge(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    base = ctx.field("base", str, required=True)
    head = ctx.field("head", str, required=True)
    message = ctx.field("commit_message", str)
    store = ctx.hub.store
    before = store.ref_sha(repo.full_name, base)
    if before is None:
        raise ApiError(404, "Base does not exist")
    try:
        head_sha = store.commit_info(repo.full_name, head).sha
    except NotFound:
        raise ApiError(404, "Head does not exist") from None
    text = message or f"Merge {head_sha if head == head_sha else head} into {base}"
    try:
        new = store.merge_into(
            repo.full_name,
            base,
            head_sha,
            message=text,
            committer=Identity("GitHub", "noreply@github.com"),
        )
    except MergeConflict:
        ctx.state.record("merge_conflict", repo=repo.full_name, base=base, head=head_sha)
        raise ApiError(409, "Merge conflict") from None
    except RefMoved:
        raise ApiError(409, "Base branch was modified") from None
    if new is None:
        return 204, None
    ctx.hub.on_branch_moved(repo, f"refs/heads/{base}", before, new, ctx.actor.user)
    return 201, commit_json(ctx, repo, store.commit_info(repo.full_name, new))


_R = "/repos/{owner}/{repo}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_R + "/git/refs", ["POST"], create_ref),
    (_R + "/git/refs/heads/{branch:path}", ["PATCH"], update_ref),
    (_R + "/merges", ["POST"], merge),
]
