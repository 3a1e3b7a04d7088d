"""Repository ruleset routes: create and list rulesets, and the active rules on a branch."""

from __future__ import annotations

from typing import Any

from fakehub.auth import ApiError, not_found
from fakehub.records import Repo, Ruleset, iso, node_id
from fakehub.rest.context import Ctx, Result, paginate
from fakehub.rulesets import branch_rules

ENFORCEMENTS = ("active", "evaluate", "disabled")


def _invalid(field: str) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": "Ruleset", "field": field, "code": "invalid"}],
    )


def _ruleset_json(ctx: Ctx, repo: Repo, rs: Ruleset, *, full: bool) -> dict[str, Any]:
    api = f"{ctx.hub.payloads.api}/repos/{repo.full_name}"
    body: dict[str, Any] = {
        "id": rs.id,
        "name": rs.name,
        "target": "branch",
        "source_type": "Repository",
        "source": repo.full_name,
        "enforcement": rs.enforcement,
        "node_id": node_id("RRS", rs.id),
        "_links": {
            "self": {"href": f"{api}/rulesets/{rs.id}"},
            "html": {"href": f"{ctx.hub.url}/{repo.full_name}/rules/{rs.id}"},
        },
        "created_at": iso(rs.created_at),
        "updated_at": iso(rs.updated_at),
    }
    if full:
        body["bypass_actors"] = []
        body["current_user_can_bypass"] = "never"
        body["conditions"] = {"ref_name": {"include": rs.include, "exclude": rs.exclude}}
        body["rules"] = rs.rules
    return body


def _admin_repo(ctx: Ctx) -> Repo:
    repo = ctx.repo("administration", "write")
    if ctx.actor.kind == "user" and ctx.state.permission(repo, ctx.actor.user) != "admin":
        raise ApiError(403, "Must have admin rights to Repository.")
    return repo


def create_ruleset(ctx: Ctx) -> Result:
    repo = _admin_repo(ctx)
    name = ctx.field("name", str, required=True)
    enforcement = ctx.field("enforcement", str, required=True)
    if enforcement not in ENFORCEMENTS:
        raise _invalid("enforcement")
    if (ctx.field("target", str) or "branch") != "branch":
        raise _invalid("target")  # only branch rulesets are modelled
    ref_name = (ctx.field("conditions", dict) or {}).get("ref_name") or {}
    rules = ctx.field("rules", list) or []
    if not all(isinstance(r, dict) and isinstance(r.get("type"), str) for r in rules):
        raise _invalid("rules")
    if any(rs.name == name for rs in repo.rulesets):
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "Ruleset", "code": "custom", "message": "Name must be unique"}],
        )
    ruleset = Ruleset(
        id=ctx.state.next_id(),
        name=name,
        enforcement=enforcement,
        include=[str(p) for p in ref_name.get("include") or ()],
        exclude=[str(p) for p in ref_name.get("exclude") or ()],
        rules=[{k: v for k, v in r.items() if k in ("type", "parameters")} for r in rules],
    )
    with ctx.state.lock:
        repo.rulesets.append(ruleset)
    ctx.state.record("ruleset_created", repo=repo.full_name, id=ruleset.id, name=name)
    return 201, _ruleset_json(ctx, repo, ruleset, full=True)


def list_rulesets(ctx: Ctx) -> Result:
    repo = ctx.repo()
    chunk, headers = paginate(ctx, list(repo.rulesets))
    return 200, [_ruleset_json(ctx, repo, rs, full=False) for rs in chunk], headers


def get_ruleset(ctx: Ctx) -> Result:
    repo = ctx.repo()
    wanted = ctx.int_param("ruleset_id")
    for rs in repo.rulesets:
        if rs.id == wanted:
            return 200, _ruleset_json(ctx, repo, rs, full=True)
    raise not_found()


def get_branch_rules(ctx: Ctx) -> Result:
    """The active rules on a branch (which need not exist), each with its ruleset's source."""
    repo = ctx.repo()
    rules = [
        {
            **rule,
            "ruleset_source_type": "Repository",
            "ruleset_source": repo.full_name,
            "ruleset_id": rs.id,
        }
        for rs, rule in branch_rules(repo, ctx.params["branch"])
    ]
    chunk, headers = paginate(ctx, rules)
    return 200, chunk, headers


_R = "/repos/{owner}/{repo}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_R + "/rulesets", ["POST"], create_ruleset),
    (_R + "/rulesets", ["GET"], list_rulesets),
    (_R + "/rulesets/{ruleset_id}", ["GET"], get_ruleset),
    (_R + "/rules/branches/{branch:path}", ["GET"], get_branch_rules),
]
