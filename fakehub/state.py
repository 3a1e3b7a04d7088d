"""fakehub's in-memory GitHub model: users, apps, installations, tokens, repositories, issues,
pull requests, labels, comments, reactions, dependencies, checks, statuses and an event log.

Everything is guarded by one re-entrant lock (``State.lock``); callers that read several objects
and then write take it themselves. Issues and pull requests share one number sequence per
repository, and every object with a database ``id`` draws from one global sequence that starts far
from the issue numbers, so a client that confuses ``id`` and ``number`` breaks. The records
themselves (dataclasses) are in ``fakehub/records.py``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakehub.records import (
    App,
    CheckRun,
    CheckSuite,
    Comment,
    Installation,
    InstallationToken,
    Issue,
    Label,
    Protection,
    PullInfo,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    Status,
    User,
    iso,
    node_id,
)

# The records moved to fakehub/records.py; they stay importable from here.
__all__ = [
    "PERMISSION_LEVELS",
    "TOKEN_TTL_S",
    "App",
    "CheckRun",
    "CheckSuite",
    "Comment",
    "Installation",
    "InstallationToken",
    "Issue",
    "Label",
    "Protection",
    "PullInfo",
    "Reaction",
    "Repo",
    "Review",
    "ReviewComment",
    "State",
    "Status",
    "User",
    "iso",
    "node_id",
]

TOKEN_TTL_S = 3600.0
PERMISSION_LEVELS = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


class State:
    """The whole model. Lookups return ``None`` for unknown objects; callers map that to 404."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, InstallationToken] = {}
        self.repos: dict[str, Repo] = {}  # lower-cased full name -> repo
        self.issues_by_id: dict[int, Issue] = {}
        self.comments: dict[int, Comment] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.check_suites: dict[int, CheckSuite] = {}
        self.reviews: dict[int, Review] = {}
        self.review_comments: dict[int, ReviewComment] = {}
        self.statuses: list[Status] = []
        self.log: list[dict[str, Any]] = []
        self.logged = threading.Condition(self.lock)  # notified whenever ``log`` grows
        self._ids = {"user": 1000, "app": 100, "installation": 7000, "repo": 500_000}
        self._db_id = 1_000_000

    # -- sequences -------------------------------------------------------------------------
    def next_id(self, kind: str | None = None) -> int:
        with self.lock:
            if kind is None:
                self._db_id += 1
                return self._db_id
            self._ids[kind] += 1
            return self._ids[kind]

    def record(self, type: str, **fields: Any) -> dict[str, Any]:
        entry = {"type": type, "at": time.time(), **fields}
        with self.lock:
            self.log.append(entry)
            self.logged.notify_all()
        return entry

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self.log if type is None or e["type"] == type]

    # -- accounts --------------------------------------------------------------------------
    def add_user(self, login: str, type: str = "User") -> User:
        with self.lock:
            if login.lower() in self.users:
                raise ValueError(f"user {login!r} exists")
            user = User(login, self.next_id("user"), type, token="ghp_" + secrets.token_hex(18))
            self.users[login.lower()] = user
            return user

    def user(self, login: str) -> User | None:
        return self.users.get(login.lower())

    def user_by_token(self, token: str) -> User | None:
        with self.lock:
            return next((u for u in self.users.values() if u.token and u.token == token), None)

    def add_app(
        self,
        *,
        slug: str,
        owner: User,
        webhook_url: str | None,
        webhook_secret: str,
        events: list[str],
        permissions: dict[str, str],
        name: str | None = None,
    ) -> App:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        with self.lock:
            app_id = self.next_id("app")
            bot = self.add_user(f"{slug}[bot]", "Bot")
            app = App(
                id=app_id,
                slug=slug,
                name=name or slug,
                client_id=f"Iv23li{secrets.token_hex(7)}",
                owner=owner,
                bot=bot,
                private_key_pem=private_pem,
                public_key_pem=public_pem,
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                events=list(events),
                permissions={"metadata": "read", **permissions},
            )
            bot.token = ""  # a bot acts only through installation tokens
            self.apps[app_id] = app
            return app

    def app_by_issuer(self, iss: object) -> App | None:
        with self.lock:
            for app in self.apps.values():
                if str(iss) in (str(app.id), app.client_id):
                    return app
            return None

    def install(self, app: App, account: User, repos: list[Repo]) -> Installation:
        with self.lock:
            inst = Installation(
                id=self.next_id("installation"),
                app=app,
                account=account,
                repository_ids=[r.id for r in repos],
                permissions=dict(app.permissions),
                events=list(app.events),
            )
            self.installations[inst.id] = inst
            return inst

    def installations_for(self, repo: Repo) -> list[Installation]:
        with self.lock:
            return [i for i in self.installations.values() if repo.id in i.repository_ids]

    def issue_token(
        self,
        inst: Installation,
        repository_ids: list[int] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> InstallationToken:
        with self.lock:
            tok = InstallationToken(
                token="ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b"),
                installation=inst,
                expires_at=time.time() + TOKEN_TTL_S,
                repository_ids=list(
                    repository_ids if repository_ids is not None else inst.repository_ids
                ),
                permissions=dict(permissions if permissions is not None else inst.permissions),
                narrowed=repository_ids is not None,
            )
            self.tokens[tok.token] = tok
            return tok

    # -- repositories ----------------------------------------------------------------------
    def add_repo(self, owner: User, name: str, **kwargs: Any) -> Repo:
        with self.lock:
            full = f"{owner.login}/{name}".lower()
            if full in self.repos:
                raise ValueError(f"repository {full!r} exists")
            repo = Repo(id=self.next_id("repo"), owner=owner, name=name, **kwargs)
            self.repos[full] = repo
            return repo

    def repo(self, owner: str, name: str | None = None) -> Repo | None:
        full = owner if name is None else f"{owner}/{name}"
        return self.repos.get(full.lower())

    def repo_by_id(self, repo_id: int) -> Repo | None:
        with self.lock:
            return next((r for r in self.repos.values() if r.id == repo_id), None)

    def permission(self, repo: Repo, user: User) -> str:
        """A user's role on a repository: owners are admin; public repos are readable by all."""
        if user.id == repo.owner.id:
            return "admin"
        role = repo.collaborators.get(user.login.lower())
        if role:
            return role
        return "none" if repo.private else "read"

    # -- labels, issues, comments ----------------------------------------------------------
    def label(self, repo: Repo, name: str, *, create: bool = False) -> Label | None:
        with self.lock:
            found = repo.labels.get(name.lower())
            if found is None and create:
                found = Label(self.next_id(), name)
                repo.labels[name.lower()] = found
            return found

    def add_issue(
        self, repo: Repo, title: str, body: str | None, user: User, **kwargs: Any
    ) -> Issue:
        with self.lock:
            issue = Issue(self.next_id(), repo.next_number, repo, title, body, user, **kwargs)
            repo.next_number += 1
            repo.issues[issue.number] = issue
            self.issues_by_id[issue.id] = issue
            return issue

    def issue(self, repo: Repo, number: int) -> Issue | None:
        return repo.issues.get(number)

    def add_comment(self, issue: Issue, user: User, body: str, app: App | None = None) -> Comment:
        with self.lock:
            comment = Comment(self.next_id(), issue, user, body, app)
            self.comments[comment.id] = comment
            issue.comments += 1
            issue.updated_at = comment.created_at
            return comment

    def open_pull_for_head(self, repo: Repo, head: str) -> Issue | None:
        with self.lock:
            for issue in repo.issues.values():
                if issue.pull and issue.state == "open" and issue.pull.head_ref == head:
                    return issue
            return None

    def open_pulls(self, repo: Repo) -> list[Issue]:
        with self.lock:
            return [i for i in repo.issues.values() if i.pull and i.state == "open"]

    # -- reviews ---------------------------------------------------------------------------
    def add_review(
        self,
        pull: Issue,
        user: User,
        state: str,
        body: str,
        commit_id: str,
        comments: Sequence[tuple[str, str, int | None, int | None]] = (),
    ) -> Review:
        """A submitted review and its inline comments, given as (path, body, line, position)."""
        with self.lock:
            review = Review(self.next_id(), pull, user, body, state, commit_id)
            self.reviews[review.id] = review
            for path, text, line, position in comments:
                comment = ReviewComment(
                    self.next_id(), review, path, text, line, position, commit_id
                )
                self.review_comments[comment.id] = comment
            pull.updated_at = review.submitted_at
            return review

    def reviews_for(self, pull: Issue) -> list[Review]:
        """A pull request's reviews, oldest first (as GitHub lists them)."""
        with self.lock:
            return sorted((r for r in self.reviews.values() if r.pull is pull), key=lambda r: r.id)

    def review_comments_for(self, pull: Issue) -> list[ReviewComment]:
        """A pull request's review comments, oldest first."""
        with self.lock:
            found = (c for c in self.review_comments.values() if c.pull is pull)
            return sorted(found, key=lambda c: c.id)

    # -- checks and statuses ---------------------------------------------------------------
    def suite_for(self, repo: Repo, app: App, head_sha: str, head_branch: str | None) -> CheckSuite:
        with self.lock:
            for suite in self.check_suites.values():
                if suite.repo is repo and suite.app is app and suite.head_sha == head_sha:
                    return suite
            suite = CheckSuite(self.next_id(), repo, app, head_sha, head_branch)
            self.check_suites[suite.id] = suite
            return suite

    def runs_for(self, repo: Repo, sha: str) -> list[CheckRun]:
        with self.lock:
            return [r for r in self.check_runs.values() if r.repo is repo and r.head_sha == sha]

    def statuses_for(self, repo: Repo, sha: str) -> list[Status]:
        """Statuses for a commit, newest first (as GitHub lists them)."""
        with self.lock:
            found = [s for s in self.statuses if s.repo is repo and s.sha == sha]
            return sorted(found, key=lambda s: s.id, reverse=True)

    def check_states(self, repo: Repo, sha: str) -> dict[str, str]:
        """name/context -> latest conclusion or state ("pending" while a run is not completed)."""
        with self.lock:
            states: dict[str, str] = {}
            for s in sorted(self.statuses_for(repo, sha), key=lambda s: s.id):
                states[s.context] = s.state
            for run in sorted(self.runs_for(repo, sha), key=lambda r: r.id):
                done = run.status == "completed" and run.conclusion
                states[run.name] = run.conclusion if done and run.conclusion else "pending"
            return states
