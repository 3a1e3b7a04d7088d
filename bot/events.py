"""Webhook payloads, parsed leniently into the few fields the bot uses.

Policy (kodiak's ``events/README.md``): parse only what we use. GitHub's payloads are large,
grow new fields, and old deliveries (and GitHub's own published examples) lack fields that
newer ones carry. So every model here ignores unknown keys, every field is optional, and a
field whose value has an unexpected shape becomes ``None`` instead of failing the whole
delivery. ``parse_event`` never raises; the handlers re-read state from GitHub anyway
(webhooks are triggers), so a missing field costs at most a skipped shortcut.

Every file under ``tests/fixtures/webhooks/`` goes through ``parse_event`` in
``tests/bot/test_events.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler
from pydantic.functional_validators import WrapValidator

__all__ = ["EventInfo", "parse_event"]

T = TypeVar("T")


def _none_on_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


#: ``T``, or ``None`` when the value is missing, ``null`` or of another shape.
Lenient = Annotated[T | None, WrapValidator(_none_on_error)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Model):
    login: Lenient[str] = None
    type: Lenient[str] = None  # "User" | "Bot" | "Organization"


class Installation(_Model):
    id: Lenient[int] = None


class Repository(_Model):
    full_name: Lenient[str] = None


class Label(_Model):
    name: Lenient[str] = None


class Issue(_Model):
    number: Lenient[int] = None
    repository_url: Lenient[str] = None  # ".../repos/{owner}/{name}"
    pull_request: Lenient[dict[str, Any]] = None  # present only when the "issue" is a PR


class Commit(_Model):
    sha: Lenient[str] = None


class PullRequest(_Model):
    number: Lenient[int] = None
    merged: Lenient[bool] = None
    head: Lenient[Commit] = None


class Review(_Model):
    id: Lenient[int] = None
    state: Lenient[str] = None  # lower case in webhooks: "changes_requested", "approved", ...
    user: Lenient[Account] = None
    commit_id: Lenient[str] = None


class CheckRun(_Model):
    head_sha: Lenient[str] = None


class Envelope(_Model):
    """The fields every event may carry."""

    action: Lenient[str] = None
    installation: Lenient[Installation] = None
    repository: Lenient[Repository] = None
    sender: Lenient[Account] = None


class IssuesEvent(Envelope):
    """``issues`` and ``issue_comment``."""

    issue: Lenient[Issue] = None
    label: Lenient[Label] = None


class IssueDependenciesEvent(Envelope):
    blocked_issue: Lenient[Issue] = None
    blocking_issue: Lenient[Issue] = None
    blocked_issue_repo: Lenient[Repository] = None  # sent with blocking_added / _removed
    blocking_issue_repo: Lenient[Repository] = None  # sent with blocked_by_added / _removed


class SubIssuesEvent(Envelope):
    parent_issue: Lenient[Issue] = None
    sub_issue: Lenient[Issue] = None
    parent_issue_repo: Lenient[Repository] = None  # sent with parent_issue_added / _removed
    sub_issue_repo: Lenient[Repository] = None  # sent with sub_issue_added / _removed


class PullRequestEvent(Envelope):
    number: Lenient[int] = None
    pull_request: Lenient[PullRequest] = None


class PullRequestReviewEvent(Envelope):
    review: Lenient[Review] = None
    pull_request: Lenient[PullRequest] = None


class CheckRunEvent(Envelope):
    check_run: Lenient[CheckRun] = None


class CheckSuiteEvent(Envelope):
    check_suite: Lenient[CheckRun] = None  # same field we use: head_sha


class StatusEvent(Envelope):
    sha: Lenient[str] = None


class PushEvent(Envelope):
    after: Lenient[str] = None


class InstallationEvent(Envelope):
    repositories: Lenient[list[Lenient[Repository]]] = None


class InstallationRepositoriesEvent(Envelope):
    repositories_added: Lenient[list[Lenient[Repository]]] = None
    repositories_removed: Lenient[list[Lenient[Repository]]] = None


MODELS: dict[str, type[Envelope]] = {
    "issues": IssuesEvent,
    "issue_comment": IssuesEvent,
    "issue_dependencies": IssueDependenciesEvent,
    "sub_issues": SubIssuesEvent,
    "pull_request": PullRequestEvent,
    "pull_request_review": PullRequestReviewEvent,
    "check_run": CheckRunEvent,
    "check_suite": CheckSuiteEvent,
    "status": StatusEvent,
    "push": PushEvent,
    "installation": InstallationEvent,
    "installation_repositories": InstallationRepositoriesEvent,
}


@dataclass(frozen=True)
class EventInfo:
    """What the bot reads from one delivery. Fields an event does not carry are ``None``/empty."""

    event: str
    action: str | None = None
    installation_id: int | None = None
    repo: str | None = None  # repository.full_name
    sender_login: str | None = None
    sender_type: str | None = None  # "User" | "Bot" | "Organization"
    issue_number: int | None = None  # issues / issue_comment: issue.number
    is_pull_request: bool = False  # issue payloads for PRs carry issue.pull_request
    label: str | None = None  # issues.labeled / unlabeled: label.name
    #: issue_dependencies: (blocked_issue, blocking_issue); sub_issues: (parent_issue,
    #: sub_issue); each as (repo full name, number). Issues without a number are left out.
    related_issues: tuple[tuple[str, int], ...] = ()
    pull_number: int | None = None  # pull_request, pull_request_review
    pull_merged: bool | None = None  # pull_request, pull_request_review
    review_id: int | None = None  # pull_request_review: review.id
    review_state: str | None = None  # pull_request_review: review.state, lower case
    review_by: str | None = None  # pull_request_review: review.user.login
    head_sha: str | None = None  # pull_request head, check_run/check_suite, status sha, push after
    repos_added: tuple[str, ...] = ()  # installation.created, installation_repositories.added
    repos_removed: tuple[str, ...] = ()  # installation.deleted, installation_repositories.removed


def parse_event(event: str, payload: Mapping[str, Any]) -> EventInfo:
    """Parse one delivery's payload; never raises. Unknown events get the generic fields only."""
    model = MODELS.get(event, Envelope)
    data = dict(payload) if isinstance(payload, Mapping) else {}
    try:
        parsed = model.model_validate(data)
    except ValidationError:  # unreachable with all-lenient fields; kept so we never raise
        parsed = model()
    repo = parsed.repository.full_name if parsed.repository else None
    sender = parsed.sender or Account()
    return EventInfo(
        event=event,
        action=parsed.action,
        installation_id=parsed.installation.id if parsed.installation else None,
        repo=repo,
        sender_login=sender.login,
        sender_type=sender.type,
        **_specific(parsed, repo),
    )


def _specific(parsed: Envelope, repo: str | None) -> dict[str, Any]:
    """The event-specific fields of ``EventInfo``."""
    match parsed:
        case IssuesEvent(issue=issue, label=label):
            return {
                "issue_number": issue.number if issue else None,
                "is_pull_request": issue is not None and issue.pull_request is not None,
                "label": label.name if label else None,
            }
        case IssueDependenciesEvent():
            pairs = [
                (parsed.blocked_issue, parsed.blocked_issue_repo),
                (parsed.blocking_issue, parsed.blocking_issue_repo),
            ]
            return {"related_issues": _related(pairs, default=repo)}
        case SubIssuesEvent():
            pairs = [
                (parsed.parent_issue, parsed.parent_issue_repo),
                (parsed.sub_issue, parsed.sub_issue_repo),
            ]
            return {"related_issues": _related(pairs, default=repo)}
        case PullRequestEvent(number=number, pull_request=pull):
            if number is None and pull is not None:
                number = pull.number
            return {
                "pull_number": number,
                "pull_merged": pull.merged if pull else None,
                "head_sha": pull.head.sha if pull and pull.head else None,
            }
        case PullRequestReviewEvent(review=review, pull_request=pull):
            return {
                "pull_number": pull.number if pull else None,
                "pull_merged": pull.merged if pull else None,
                "head_sha": pull.head.sha if pull and pull.head else None,
                "review_id": review.id if review else None,
                "review_state": review.state.lower() if review and review.state else None,
                "review_by": review.user.login if review and review.user else None,
            }
        case CheckRunEvent(check_run=run) | CheckSuiteEvent(check_suite=run):
            return {"head_sha": run.head_sha if run else None}
        case StatusEvent(sha=sha) | PushEvent(after=sha):
            return {"head_sha": sha}
        case InstallationEvent(action="created", repositories=repos):
            return {"repos_added": _names(repos)}
        case InstallationEvent(action="deleted", repositories=repos):
            return {"repos_removed": _names(repos)}
        case InstallationRepositoriesEvent(repositories_added=added, repositories_removed=gone):
            return {"repos_added": _names(added), "repos_removed": _names(gone)}
    return {}


_REPO_URL = re.compile(r"/repos/([^/]+/[^/]+?)/?$")


def _related(
    pairs: list[tuple[Issue | None, Repository | None]], default: str | None
) -> tuple[tuple[str, int], ...]:
    """(repo, number) per issue, its repo taken from its repository_url, else from the event's
    ``*_issue_repo`` object, else from the delivery's repository. Numberless issues are skipped.
    """
    out: list[tuple[str, int]] = []
    for issue, issue_repo in pairs:
        if issue is None or issue.number is None:
            continue
        match = _REPO_URL.search(issue.repository_url or "")
        repo = match.group(1) if match else (issue_repo and issue_repo.full_name) or default
        if repo:
            out.append((repo, issue.number))
    return tuple(out)


def _names(repos: list[Repository | None] | None) -> tuple[str, ...]:
    return tuple(r.full_name for r in repos or () if r is not None and r.full_name)
