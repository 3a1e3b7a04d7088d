"""Repository rulesets: which active rules apply to a branch, as GitHub aggregates them.

A ruleset applies to a branch when its enforcement is ``active`` and its ``ref_name`` condition
includes the branch and does not exclude it. Every applying rule counts; the most restrictive
version of each wins, so the required checks of all of them add up (``required_contexts``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from fakehub.records import Repo, Ruleset


def _matches(pattern: str, repo: Repo, branch: str) -> bool:
    if pattern == "~ALL":
        return True
    if pattern == "~DEFAULT_BRANCH":
        return branch == repo.default_branch
    return fnmatchcase(f"refs/heads/{branch}", pattern)


def applies(ruleset: Ruleset, repo: Repo, branch: str) -> bool:
    return (
        ruleset.enforcement == "active"
        and any(_matches(p, repo, branch) for p in ruleset.include)
        and not any(_matches(p, repo, branch) for p in ruleset.exclude)
    )


def branch_rules(repo: Repo, branch: str) -> list[tuple[Ruleset, dict[str, Any]]]:
    """The active rules on ``branch``, each with the ruleset it comes from."""
    return [(rs, rule) for rs in repo.rulesets if applies(rs, repo, branch) for rule in rs.rules]


def required_contexts(repo: Repo, branch: str) -> list[str]:
    """The status check contexts the rulesets on ``branch`` require."""
    found: dict[str, None] = {}
    for _, rule in branch_rules(repo, branch):
        if rule.get("type") == "required_status_checks":
            for check in (rule.get("parameters") or {}).get("required_status_checks") or ():
                found[str(check["context"])] = None
    return list(found)


def strict(repo: Repo, branch: str) -> bool:
    """Whether a ruleset on ``branch`` requires it to be up to date before merging."""
    return any(
        (rule.get("parameters") or {}).get("strict_required_status_checks_policy")
        for _, rule in branch_rules(repo, branch)
        if rule.get("type") == "required_status_checks"
    )


def required_approvals(repo: Repo, branch: str) -> int:
    """The approving reviews the ``pull_request`` rules on ``branch`` require (the most)."""
    return max(
        (
            int((rule.get("parameters") or {}).get("required_approving_review_count") or 0)
            for _, rule in branch_rules(repo, branch)
            if rule.get("type") == "pull_request"
        ),
        default=0,
    )


def merge_queue(repo: Repo, branch: str) -> dict[str, Any] | None:
    """The parameters of the ``merge_queue`` rule on ``branch`` (its first, if several), or
    None when no active ruleset requires GitHub's merge queue there."""
    for _, rule in branch_rules(repo, branch):
        if rule.get("type") == "merge_queue":
            return dict(rule.get("parameters") or {})
    return None


def code_owner_review(repo: Repo, branch: str) -> bool:
    """Whether a ``pull_request`` rule on ``branch`` requires a code owner's approval."""
    return any(
        (rule.get("parameters") or {}).get("require_code_owner_review")
        for _, rule in branch_rules(repo, branch)
        if rule.get("type") == "pull_request"
    )
