"""fakehub's model records: users, apps, installations, tokens, repositories, issues and pull
requests, labels, comments, reactions, reviews, checks and statuses, as plain dataclasses.

The records hold no lock and no sequence; :class:`fakehub.state.State` creates them, gives them
their ids and guards them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    return f"{kind}_kwDO{ident:08d}"


@dataclass(eq=False)
class User:
    login: str
    id: int
    type: str = "User"  # User | Bot | Organization
    token: str = ""
    name: str | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def node_id(self) -> str:
        return node_id({"Bot": "BOT", "Organization": "O"}.get(self.type, "U"), self.id)

    @property
    def email(self) -> str:
        return f"{self.id}+{self.login}@users.noreply.fakehub.local"


@dataclass(eq=False)
class App:
    id: int
    slug: str
    name: str
    client_id: str
    owner: User
    bot: User
    private_key_pem: str
    public_key_pem: str
    webhook_url: str | None
    webhook_secret: str
    events: list[str]
    permissions: dict[str, str]
    created_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Installation:
    id: int
    app: App
    account: User
    repository_ids: list[int]
    permissions: dict[str, str]
    events: list[str]
    created_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class InstallationToken:
    token: str
    installation: Installation
    expires_at: float
    repository_ids: list[int]
    permissions: dict[str, str]
    narrowed: bool = False


@dataclass(eq=False)
class Protection:
    contexts: list[str]
    strict: bool
    code_owner_reviews: bool = False  # required_pull_request_reviews.require_code_owner_reviews


@dataclass(eq=False)
class Ruleset:
    """A repository ruleset targeting branches: ``include``/``exclude`` are its
    ``conditions.ref_name`` patterns (``~DEFAULT_BRANCH``, ``~ALL``, ``refs/heads/<glob>``);
    ``rules`` are GitHub's rule objects, ``{type, parameters?}``."""

    id: int
    name: str
    enforcement: str  # "active" | "evaluate" | "disabled"
    include: list[str]
    exclude: list[str]
    rules: list[dict[str, Any]]
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass(eq=False)
class Reaction:
    id: int
    user: User
    content: str
    created_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class PullInfo:
    head_ref: str
    base_ref: str
    head_sha: str
    draft: bool = False
    merged: bool = False
    merged_at: float | None = None
    merge_commit_sha: str | None = None
    merged_by: User | None = None


@dataclass(eq=False)
class Issue:
    id: int
    number: int
    repo: Repo
    title: str
    body: str | None
    user: User
    app: App | None = None  # performed_via_github_app
    state: str = "open"
    state_reason: str | None = None
    labels: list[Label] = field(default_factory=list)
    assignees: list[User] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    closed_by: User | None = None
    comments: int = 0
    blocked_by: list[int] = field(default_factory=list)  # database ids of blocking issues
    parent: int | None = None  # database id
    children: list[int] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    pull: PullInfo | None = None

    @property
    def node_id(self) -> str:
        return node_id("PR" if self.pull else "I", self.id)


@dataclass(eq=False)
class Comment:
    id: int
    issue: Issue
    user: User
    body: str
    app: App | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass(eq=False)
class Review:
    """A submitted pull request review. ``state`` is the REST spelling (``CHANGES_REQUESTED``)."""

    id: int
    pull: Issue
    user: User
    body: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED
    commit_id: str
    submitted_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class ReviewComment:
    """An inline comment made with a review, on a line (or diff position) of one file."""

    id: int
    review: Review
    path: str
    body: str
    line: int | None
    position: int | None
    commit_id: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @property
    def pull(self) -> Issue:
        return self.review.pull

    @property
    def user(self) -> User:
        return self.review.user


@dataclass(eq=False)
class CheckSuite:
    id: int
    repo: Repo
    app: App
    head_sha: str
    head_branch: str | None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class CheckRun:
    id: int
    repo: Repo
    suite: CheckSuite
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    details_url: str | None = None
    external_id: str | None = None
    started_at: float = field(default_factory=time.time)
    completed_at: float | None = None

    @property
    def app(self) -> App:
        return self.suite.app


@dataclass(eq=False)
class Status:
    id: int
    repo: Repo
    sha: str
    state: str
    context: str
    creator: User
    description: str | None = None
    target_url: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(eq=False)
class Repo:
    id: int
    owner: User
    name: str
    default_branch: str = "main"
    private: bool = False
    description: str | None = None
    protection: dict[str, Protection] = field(default_factory=dict)
    rulesets: list[Ruleset] = field(default_factory=list)
    ci_command: list[str] | None = None
    # Branches (fnmatch patterns) whose pushes run CI too, as a workflow's ``on: push``.
    ci_push: list[str] = field(default_factory=list)
    # How CI reports: a ``ci`` check run (GitHub Actions, a CI App) or a ``ci`` commit status
    # (an external CI through the Statuses API; it cannot be re-run through the Checks API).
    ci_reports: str = "check_run"
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> permission
    labels: dict[str, Label] = field(default_factory=dict)  # lower-cased name -> label
    issues: dict[int, Issue] = field(default_factory=dict)  # number -> issue or pull
    next_number: int = 1
    created_at: float = field(default_factory=time.time)
    pushed_at: float = field(default_factory=time.time)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"
