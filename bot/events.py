"""Webhook payloads, parsed leniently into the few fields the bot uses.

Policy (kodiak's ``events/README.md``): parse only what we use. GitHub's payloads are large,
grow new fields, and old deliveries (and GitHub's own published examples) lack fields that
newer ones carry. So every model here ignores unknown keys, every field is optional, and a
field whose value has an unexpected shape becomes ``None`` instead of failing the whole
delivery. ``parse_event`` never raises and returns the event's own typed model (``IssuesEvent``,
``PushEvent``, ...; ``Envelope`` for an event we do not handle), whose properties are what the
handlers (``bot.handlers``) read; they re-read state from GitHub anyway (webhooks are triggers),
so a missing field costs at most a skipped shortcut.

githubkit's own webhook models (``githubkit.webhooks.parse_obj``, githubkit 0.16.1) were measured
against these on every recorded fixture (2-core machine, December 2026): they validate the
whole payload strictly, so 27 of the 64 recordings (GitHub's own older examples and the
hand-built ones) raise ``ValidationError``, and on the 37 both parse they take 1.9 ms per
payload against 7.6 µs here (250 times as long; at 2,000 deliveries/s that alone would need
more than both cores). Ours parse only what we use.

Every file under ``tests/fixtures/webhooks/`` goes through ``parse_event`` in
``tests/bot/test_events.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler
from pydantic.functional_validators import WrapValidator

__all__ = ["MODELS", "Envelope", "parse_event"]

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

    @property
    def installation_id(self) -> int | None:
        return self.installation.id if self.installation else None

    @property
    def repo(self) -> str | None:
        """``repository.full_name``."""
        return self.repository.full_name if self.repository else None

    @property
    def sender_login(self) -> str | None:
        return self.sender.login if self.sender else None

    @property
    def sender_type(self) -> str | None:
        """``"User"`` | ``"Bot"`` | ``"Organization"``."""
        return self.sender.type if self.sender else None


class IssuesEvent(Envelope):
    """``issues``."""

    issue: Lenient[Issue] = None
    label: Lenient[Label] = None

    @property
    def issue_number(self) -> int | None:
        return self.issue.number if self.issue else None

    @property
    def is_pull_request(self) -> bool:
        """Issue payloads for pull requests carry ``issue.pull_request``."""
        return self.issue is not None and self.issue.pull_request is not None

    @property
    def label_name(self) -> str | None:
        """``labeled`` / ``unlabeled``: the label's name."""
        return self.label.name if self.label else None


class IssueComment(_Model):
    id: Lenient[int] = None
    body: Lenient[str] = None
    user: Lenient[Account] = None
    performed_via_github_app: Lenient[dict[str, Any]] = None  # set when an App wrote it


class BodyChange(_Model):
    from_: Lenient[str] = Field(default=None, alias="from")


class CommentChanges(_Model):
    body: Lenient[BodyChange] = None


class IssueCommentEvent(IssuesEvent):
    """``issue_comment``: ``created`` (a command, maybe), ``edited`` (``changes.body.from``
    holds the old body), ``deleted``. The issue fields are ``IssuesEvent``'s."""

    comment: Lenient[IssueComment] = None
    changes: Lenient[CommentChanges] = None

    @property
    def comment_id(self) -> int | None:
        return self.comment.id if self.comment else None

    @property
    def comment_body(self) -> str | None:
        return self.comment.body if self.comment else None

    @property
    def comment_by(self) -> str | None:
        """The comment's author (``comment.user.login``)."""
        user = self.comment.user if self.comment else None
        return user.login if user else None

    @property
    def comment_by_type(self) -> str | None:
        """``"User"`` | ``"Bot"`` | ``"Organization"``: the comment author's account type."""
        user = self.comment.user if self.comment else None
        return user.type if user else None

    @property
    def via_app(self) -> bool:
        """Written by a GitHub App (``performed_via_github_app``)."""
        return self.comment is not None and self.comment.performed_via_github_app is not None

    @property
    def body_before(self) -> str | None:
        """``edited``: the body before the edit."""
        change = self.changes.body if self.changes else None
        return change.from_ if change else None


class IssueDependenciesEvent(Envelope):
    blocked_issue: Lenient[Issue] = None
    blocking_issue: Lenient[Issue] = None
    blocked_issue_repo: Lenient[Repository] = None  # sent with blocking_added / _removed
    blocking_issue_repo: Lenient[Repository] = None  # sent with blocked_by_added / _removed

    @property
    def related_issues(self) -> tuple[tuple[str, int], ...]:
        """(blocked issue, blocking issue), each as (repo full name, number)."""
        pairs = [
            (self.blocked_issue, self.blocked_issue_repo),
            (self.blocking_issue, self.blocking_issue_repo),
        ]
        return _related(pairs, default=self.repo)


class SubIssuesEvent(Envelope):
    parent_issue: Lenient[Issue] = None
    sub_issue: Lenient[Issue] = None
    parent_issue_repo: Lenient[Repository] = None  # sent with parent_issue_added / _removed
    sub_issue_repo: Lenient[Repository] = None  # sent with sub_issue_added / _removed

    @property
    def related_issues(self) -> tuple[tuple[str, int], ...]:
        """(parent issue, sub-issue), each as (repo full name, number)."""
        pairs = [(self.parent_issue, self.parent_issue_repo), (self.sub_issue, self.sub_issue_repo)]
        return _related(pairs, default=self.repo)


class _PullFields(Envelope):
    pull_request: Lenient[PullRequest] = None

    @property
    def pull_number(self) -> int | None:
        return self.pull_request.number if self.pull_request else None

    @property
    def pull_merged(self) -> bool | None:
        return self.pull_request.merged if self.pull_request else None

    @property
    def head_sha(self) -> str | None:
        pull = self.pull_request
        return pull.head.sha if pull and pull.head else None


class PullRequestEvent(_PullFields):
    number: Lenient[int] = None
    reason: Lenient[str] = None  # ``dequeued``: why it left the merge queue (``CI_FAILURE``, ...)

    @property
    def pull_number(self) -> int | None:
        return self.number if self.number is not None else super().pull_number


class PullRequestReviewEvent(_PullFields):
    review: Lenient[Review] = None

    @property
    def review_id(self) -> int | None:
        return self.review.id if self.review else None

    @property
    def review_state(self) -> str | None:
        """Lower case, as webhooks spell it: ``changes_requested``, ``approved``, ..."""
        return self.review.state.lower() if self.review and self.review.state else None

    @property
    def review_by(self) -> str | None:
        return self.review.user.login if self.review and self.review.user else None


class CheckRunEvent(Envelope):
    check_run: Lenient[CheckRun] = None

    @property
    def head_sha(self) -> str | None:
        return self.check_run.head_sha if self.check_run else None


class CheckSuiteEvent(Envelope):
    check_suite: Lenient[CheckRun] = None  # same field we use: head_sha

    @property
    def head_sha(self) -> str | None:
        return self.check_suite.head_sha if self.check_suite else None


class StatusEvent(Envelope):
    sha: Lenient[str] = None

    @property
    def head_sha(self) -> str | None:
        return self.sha


class MergeGroup(_Model):
    head_sha: Lenient[str] = None
    head_ref: Lenient[str] = None  # "refs/heads/gh-readonly-queue/{base}/pr-{n}-{sha}"
    base_ref: Lenient[str] = None


class MergeGroupEvent(Envelope):
    """``checks_requested`` (a group was built) or ``destroyed`` (``reason``: merged,
    invalidated, dequeued)."""

    merge_group: Lenient[MergeGroup] = None
    reason: Lenient[str] = None

    @property
    def head_sha(self) -> str | None:
        return self.merge_group.head_sha if self.merge_group else None


class PushRepository(Repository):
    default_branch: Lenient[str] = None


class PushEvent(Envelope):
    ref: Lenient[str] = None
    after: Lenient[str] = None
    repository: Lenient[PushRepository] = None

    @property
    def head_sha(self) -> str | None:
        return self.after

    @property
    def default_branch(self) -> str:
        where = self.repository
        return (where.default_branch if where else None) or "main"


class InstallationEvent(Envelope):
    repositories: Lenient[list[Lenient[Repository]]] = None

    @property
    def repos_added(self) -> tuple[str, ...]:
        """``created``: the repositories it was installed on."""
        return _names(self.repositories) if self.action == "created" else ()

    @property
    def repos_removed(self) -> tuple[str, ...]:
        """``deleted``: the repositories it was removed from."""
        return _names(self.repositories) if self.action == "deleted" else ()


class InstallationRepositoriesEvent(Envelope):
    repositories_added: Lenient[list[Lenient[Repository]]] = None
    repositories_removed: Lenient[list[Lenient[Repository]]] = None

    @property
    def repos_added(self) -> tuple[str, ...]:
        return _names(self.repositories_added)

    @property
    def repos_removed(self) -> tuple[str, ...]:
        return _names(self.repositories_removed)


MODELS: dict[str, type[Envelope]] = {
    "issues": IssuesEvent,
    "issue_comment": IssueCommentEvent,
    "issue_dependencies": IssueDependenciesEvent,
    "sub_issues": SubIssuesEvent,
    "pull_request": PullRequestEvent,
    "pull_request_review": PullRequestReviewEvent,
    "check_run": CheckRunEvent,
    "check_suite": CheckSuiteEvent,
    "status": StatusEvent,
    "push": PushEvent,
    "merge_group": MergeGroupEvent,
    "installation": InstallationEvent,
    "installation_repositories": InstallationRepositoriesEvent,
}


def parse_event(event: str, payload: Mapping[str, Any]) -> Envelope:
    """Parse one delivery's payload into its event's model; never raises. Unknown events get
    the generic ``Envelope``."""
    model = MODELS.get(event, Envelope)
    data = dict(payload) if isinstance(payload, Mapping) else {}
    try:
        return model.model_validate(data)
    except ValidationError:  # unreachable with all-lenient fields; kept so we never raise
        return model()


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
