"""Repository routes: the repository, its branches, refs, file contents, required checks and
collaborator permissions."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import Repo
from fakehub.rest.context import Ctx, Result
from fakehub.state import PERMISSION_LEVELS


def get_repo(ctx: Ctx) -> Result:
    repo = ctx.repo()
    body = ctx.hub.payloads.repo(repo, full=True)
    role = (
        "admin"
        if ctx.actor.kind == "user" and ctx.actor.user is repo.owner
        else (ctx.state.permission(repo, ctx.actor.user) if ctx.actor.kind == "user" else "write")
    )
    level = PERMISSION_LEVELS.get(role, 1)
    body["permissions"] = {
        "admin": level >= 5,
        "maintain": level >= 4,
        "push": level >= 3,
        "triage": level >= 2,
        "pull": level >= 1,
    }
    return 200, body


def _branch_json(ctx: Ctx, repo: Repo, name: str, sha: str) -> dict[str, Any]:
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    info = ctx.hub.store.commit_info(repo.full_name, sha)
    prot = repo.protection.get(name)
    contexts = prot.contexts if prot else []
    return {
        "name": name,
        "commit": commit_json(ctx, repo, info),
        "_links": {
            "self": f"{api}/branches/{name}",
            "html": f"{ctx.hub.url}/{repo.full_name}/tree/{name}",
        },
        "protected": prot is not None,
        "protection": {
            "enabled": prot is not None,
            "required_status_checks": {
                "enforcement_level": "non_admins" if prot else "off",
                "contexts": list(contexts),
                "checks": [{"context": c, "app_id": None} for c in contexts],
            },
        },
        "protection_url": f"{api}/branches/{name}/protection",
    }


def commit_json(ctx: Ctx, repo: Repo, info: Any) -> dict[str, Any]:
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    html = f"{ctx.hub.url}/{repo.full_name}"
    return {
        "sha": info.sha,
        "node_id": f"C_{info.sha[:20]}",
        "commit": {
            "author": {
                "name": info.author_name,
                "email": info.author_email,
                "date": info.author_date,
            },
            "committer": {
                "name": info.committer_name,
                "email": info.committer_email,
                "date": info.committer_date,
            },
            "message": info.message,
            "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
            "url": f"{api}/git/commits/{info.sha}",
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "url": f"{api}/commits/{info.sha}",
        "html_url": f"{html}/commit/{info.sha}",
        "comments_url": f"{api}/commits/{info.sha}/comments",
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in info.parents
        ],
    }


def get_branch(ctx: Ctx) -> Result:
    repo = ctx.repo("contents")
    name = ctx.params["branch"]
    sha = ctx.hub.store.ref_sha(repo.full_name, name)
    if sha is None:
        raise ApiError(404, "Branch not found")
    return 200, _branch_json(ctx, repo, name, sha)


def get_required_checks(ctx: Ctx) -> Result:
    repo = ctx.repo("administration")
    name = ctx.params["branch"]
    prot = repo.protection.get(name)
    if prot is None or ctx.hub.store.ref_sha(repo.full_name, name) is None:
        raise ApiError(404, "Branch not protected")
    url = f"{ctx.hub.payloads.api}/repos/{repo.full_name}/branches/{name}/protection/required_status_checks"  # noqa: E501
    return 200, {
        "url": url,
        "strict": prot.strict,
        "contexts": list(prot.contexts),
        "checks": [{"context": c, "app_id": None} for c in prot.contexts],
        "contexts_url": f"{url}/contexts",
    }


def get_required_reviews(ctx: Ctx) -> Result:
    """Classic protection's required pull request reviews (only the code-owner flag is
    modelled: enabled when it is set)."""
    repo = ctx.repo("administration")
    name = ctx.params["branch"]
    prot = repo.protection.get(name)
    if prot is None or not prot.code_owner_reviews:
        raise ApiError(404, "Required pull request reviews not enabled")
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}/branches/{name}/protection"
    return 200, {
        "url": f"{api}/required_pull_request_reviews",
        "dismiss_stale_reviews": False,
        "require_code_owner_reviews": True,
        "required_approving_review_count": 1,
        "require_last_push_approval": False,
    }


def get_ref(ctx: Ctx) -> Result:
    repo = ctx.repo("contents")
    name = ctx.params["branch"]
    sha = ctx.hub.store.ref_sha(repo.full_name, name)
    if sha is None:
        raise not_found()
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    return 200, {
        "ref": f"refs/heads/{name}",
        "node_id": f"REF_{repo.id}_{name}",
        "url": f"{api}/git/refs/heads/{name}",
        "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"},
    }


def delete_ref(ctx: Ctx) -> Result:
    repo = ctx.repo("contents", "write")
    name = ctx.params["branch"]
    before = ctx.hub.store.ref_sha(repo.full_name, name)
    if before is None or not ctx.hub.store.delete_branch(repo.full_name, name):
        raise ApiError(422, "Reference does not exist")
    from fakehub.gitstore import ZERO_SHA

    ctx.hub.on_branch_moved(repo, f"refs/heads/{name}", before, ZERO_SHA, ctx.actor.user)
    return 204, None


def get_contents(ctx: Ctx) -> Result:
    repo = ctx.repo("contents")
    path = ctx.params["path"].strip("/")
    ref = ctx.query.get("ref") or repo.default_branch
    data = ctx.hub.store.read_file(repo.full_name, ref, path)
    if data is None:
        raise not_found()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    html = f"{ctx.hub.url}/{repo.full_name}/blob/{ref}/{path}"
    git_url = f"{api}/git/blobs/{blob}"
    encoded = base64.encodebytes(data).decode()
    return 200, {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": encoded,
        "sha": blob,
        "url": f"{api}/contents/{path}?ref={ref}",
        "git_url": git_url,
        "html_url": html,
        "download_url": f"{ctx.hub.url}/{repo.full_name}/raw/{ref}/{path}",
        "_links": {"self": f"{api}/contents/{path}?ref={ref}", "git": git_url, "html": html},
    }


def get_collaborator_permission(ctx: Ctx) -> Result:
    repo = ctx.repo()
    user = ctx.state.user(ctx.params["username"])
    if user is None:
        raise not_found()
    role = ctx.state.permission(repo, user)
    legacy = {"maintain": "write", "triage": "read"}.get(role, role)
    if role == "none" or (
        role == "read" and user.login.lower() not in repo.collaborators and user is not repo.owner
    ):
        legacy, role = "none", "none" if repo.private else "read"
        legacy = "read" if role == "read" else "none"
    body_user = ctx.hub.payloads.user(user)
    level = PERMISSION_LEVELS.get(role, 0)
    body_user["permissions"] = {
        "admin": level >= 5,
        "maintain": level >= 4,
        "push": level >= 3,
        "triage": level >= 2,
        "pull": level >= 1,
    }
    body_user["role_name"] = role
    return 200, {"permission": legacy, "role_name": role, "user": body_user}


_R = "/repos/{owner}/{repo}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_R, ["GET"], get_repo),
    (
        _R + "/branches/{branch:path}/protection/required_status_checks",
        ["GET"],
        get_required_checks,
    ),
    (
        _R + "/branches/{branch:path}/protection/required_pull_request_reviews",
        ["GET"],
        get_required_reviews,
    ),
    (_R + "/branches/{branch:path}", ["GET"], get_branch),
    (_R + "/git/ref/heads/{branch:path}", ["GET"], get_ref),
    (_R + "/git/refs/heads/{branch:path}", ["DELETE"], delete_ref),
    (_R + "/contents/{path:path}", ["GET"], get_contents),
    (_R + "/collaborators/{username}/permission", ["GET"], get_collaborator_permission),
]
