"""GitHub adapter: the only module of the bot that imports githubkit.

Every method is a domain verb taking and returning plain values or core models; no githubkit
type, URL or header leaves this module. HTTP failures are classified here once
(:class:`GitHubError` with ``status``), so nothing else inspects status codes.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache.mem_cache import MemCacheStrategy
from githubkit.exception import RequestError, RequestFailed
from githubkit.retry import RetryOption

from bot.core.model import IssueRef
from bot.core.steward import PullSnapshot, Review, ReviewComment

log = logging.getLogger(__name__)

_REPO_URL = re.compile(r"/repos/([^/]+/[^/]+)$")


class _SharedTransport(httpx.AsyncHTTPTransport):
    """One connection pool for every request of the adapter.

    githubkit builds a fresh ``httpx.AsyncClient`` per request outside ``async with`` (which
    cannot span our background tasks) and closes it afterwards; a shared transport whose
    close is deferred to :meth:`GitHubAdapter.aclose` keeps connections (and TLS set-up) warm.
    """

    async def aclose(self) -> None:  # called by each short-lived client: keep the pool
        return None

    async def shutdown(self) -> None:
        await super().aclose()


class GitHubError(Exception):
    """A GitHub API call failed; ``status`` is the HTTP status (0 when there was no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class LabelApplication(NamedTuple):
    """The last ``labeled`` event of a label (GitHub's event times have whole seconds)."""

    login: str
    type: str  # "User" or "Bot"
    at: float
    removed_at: float | None  # the last ``unlabeled`` event of that label before it, if any


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    id: int
    default_branch: str
    clone_url: str


@dataclass(frozen=True)
class IssueInfo:
    repo: str
    number: int
    id: int
    title: str
    body: str
    state: str
    state_reason: str | None
    labels: tuple[str, ...]
    is_pull: bool
    author: str

    @property
    def ref(self) -> IssueRef:
        return IssueRef(self.repo, self.number)


@dataclass(frozen=True)
class Comment:
    id: int
    author: str
    author_type: str
    body: str


@dataclass(frozen=True)
class MergeOutcome:
    merged: bool
    sha: str | None
    status: int
    message: str


def _retry(exc: Exception, count: int) -> RetryOption:
    """Retry 5xx and rate limits briefly; never sleep long inside a request (requeue instead)."""
    status = getattr(getattr(exc, "response", None), "status_code", 0)
    if count < 2 and (status >= 500 or status in (403, 429) and "rate limit" in str(exc).lower()):
        return RetryOption(True, timedelta(seconds=0.5 * (count + 1)))
    return RetryOption(False)


def _issue(repo: str, data: Mapping[str, Any]) -> IssueInfo:
    return IssueInfo(
        repo=repo,
        number=int(data["number"]),
        id=int(data["id"]),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        state=str(data.get("state") or "open"),
        state_reason=data.get("state_reason"),
        labels=tuple(
            (lbl["name"] if isinstance(lbl, Mapping) else str(lbl))
            for lbl in data.get("labels") or ()
        ),
        is_pull="pull_request" in data,
        author=str((data.get("user") or {}).get("login") or ""),
    )


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _next_cursor(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            match = re.search(r"[?&]cursor=([^&>]+)", part)
            if match:
                return match.group(1)
    return None


def issue_repo(data: Mapping[str, Any], default: str) -> str:
    """The ``owner/name`` an issue object belongs to (cross-repository references carry it)."""
    match = _REPO_URL.search(str(data.get("repository_url") or ""))
    return match.group(1) if match else default


class GitHubAdapter:
    """GitHub through githubkit with App authentication and a configurable base URL."""

    def __init__(self, *, app_id: int, private_key: str, base_url: str) -> None:
        self._transport = _SharedTransport(retries=1)
        self._base_url = base_url
        self._app = GitHub(
            AppAuthStrategy(app_id, private_key),
            async_transport=self._transport,
            base_url=base_url,
            http_cache=False,
            auto_retry=_retry,
            timeout=30.0,
            user_agent="stoneforge-bot",
            # Tokens are cached per adapter, not per process: two Apps (or two GitHub hosts)
            # in one process must never share an installation token.
            cache_strategy=MemCacheStrategy(),
        )
        self._clients: dict[int, GitHub[Any]] = {}
        self._repo_cache: dict[str, RepoInfo] = {}
        self._required_cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._perm_cache: dict[tuple[str, str], tuple[float, str]] = {}

    async def aclose(self) -> None:
        await self._transport.shutdown()

    def _gh(self, installation_id: int) -> GitHub[Any]:
        client = self._clients.get(installation_id)
        if client is None:
            client = self._app.with_auth(self._app.auth.as_installation(installation_id))
            self._clients[installation_id] = client
        return client

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except RequestFailed as exc:
            resp = exc.response
            try:
                message = str(resp.json().get("message", ""))
            except Exception:  # noqa: BLE001 - error bodies are not always JSON
                message = resp.text[:200]
            raise GitHubError(resp.status_code, message) from None
        except (RequestError, TimeoutError, OSError) as exc:
            raise GitHubError(0, f"no answer from GitHub: {exc}") from None

    # --- installations and repositories -------------------------------------------------

    async def _pages(self, fetch: Callable[[int], Any], *, limit: int = 10) -> list[Any]:
        """Every item of a paginated list (``fetch(page)`` asks for 100 per page), oldest
        first, up to ``limit`` pages."""
        items: list[Any] = []
        for page in range(1, limit + 1):
            chunk = (await self._call(fetch(page))).json()
            items += chunk
            if len(chunk) < 100:
                break
        return items

    async def app_slug(self) -> str:
        resp = await self._call(self._app.rest.apps.async_get_authenticated())
        return str(resp.json()["slug"])

    async def installations(self) -> list[int]:
        resp = await self._call(self._app.rest.apps.async_list_installations(per_page=100))
        return [int(item["id"]) for item in resp.json()]

    async def installation_repos(self, installation_id: int) -> list[RepoInfo]:
        gh = self._gh(installation_id)
        repos: list[RepoInfo] = []
        page = 1
        while True:
            resp = await self._call(
                gh.rest.apps.async_list_repos_accessible_to_installation(per_page=100, page=page)
            )
            items = resp.json().get("repositories", [])
            repos.extend(self._remember(item) for item in items)
            if len(items) < 100:
                return repos
            page += 1

    def _remember(self, data: Mapping[str, Any]) -> RepoInfo:
        info = RepoInfo(
            full_name=data["full_name"],
            id=int(data["id"]),
            default_branch=data.get("default_branch") or "main",
            clone_url=data["clone_url"],
        )
        self._repo_cache[info.full_name] = info
        return info

    async def repo(self, installation_id: int, repo: str) -> RepoInfo:
        cached = self._repo_cache.get(repo)
        if cached:
            return cached
        owner, name = repo.split("/", 1)
        resp = await self._call(self._gh(installation_id).rest.repos.async_get(owner, name))
        return self._remember(resp.json())

    async def repo_token(self, installation_id: int, repo: str) -> str:
        """A fresh installation token for one repository, to push a task's branch.

        Scoped to that repository with contents and pull requests write (the issue's contract
        for a job token); metadata read comes with any installation token.
        """
        name = repo.split("/", 1)[1]
        resp = await self._call(
            self._app.rest.apps.async_create_installation_access_token(
                installation_id,
                repositories=[name],
                permissions={"contents": "write", "pull_requests": "write"},
            )
        )
        return str(resp.parsed_data.token)

    async def revoke_token(self, token: str) -> None:
        """Revoke an installation token we handed out (it authenticates its own revocation)."""
        client = GitHub(
            TokenAuthStrategy(token),
            base_url=self._base_url,
            http_cache=False,
            auto_retry=False,
            async_transport=self._transport,
        )
        try:
            await self._call(client.rest.apps.async_revoke_installation_access_token())
        except GitHubError as exc:
            if exc.status != 401:  # already expired or revoked
                raise

    # --- issues ---------------------------------------------------------------------------
    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None:
        owner, name = ref.repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.issues.async_get(owner, name, ref.number)
            )
        except GitHubError as exc:
            if exc.status in (404, 410):
                return None
            raise
        return _issue(ref.repo, resp.json())

    async def labeled_issues(self, installation_id: int, repo: str, label: str) -> list[IssueInfo]:
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        found: list[IssueInfo] = []
        page = 1
        while True:
            resp = await self._call(
                gh.rest.issues.async_list_for_repo(
                    owner, name, state="open", labels=label, per_page=100, page=page
                )
            )
            items = resp.json()
            found.extend(_issue(repo, item) for item in items if "pull_request" not in item)
            if len(items) < 100:
                return found
            page += 1

    async def blocked_by(self, installation_id: int, ref: IssueRef) -> list[IssueRef]:
        """Native "blocked by" dependencies plus sub-issues (a parent waits for its children)."""
        owner, name = ref.repo.split("/", 1)
        gh = self._gh(installation_id)
        refs: list[IssueRef] = []
        resp = await self._call(
            gh.rest.issues.async_list_dependencies_blocked_by(owner, name, ref.number, per_page=100)
        )
        refs.extend(IssueRef(issue_repo(i, ref.repo), int(i["number"])) for i in resp.json())
        try:
            resp = await self._call(
                gh.rest.issues.async_list_sub_issues(owner, name, ref.number, per_page=100)
            )
            refs.extend(IssueRef(issue_repo(i, ref.repo), int(i["number"])) for i in resp.json())
        except GitHubError as exc:
            if exc.status != 404:
                raise
        return refs

    async def sub_issues(self, installation_id: int, ref: IssueRef) -> list[IssueInfo]:
        """The issue's sub-issues with their states (empty when it has none)."""
        owner, name = ref.repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.issues.async_list_sub_issues(
                    owner, name, ref.number, per_page=100
                )
            )
        except GitHubError as exc:
            if exc.status == 404:
                return []
            raise
        return [_issue(issue_repo(i, ref.repo), i) for i in resp.json()]

    async def comments(self, installation_id: int, ref: IssueRef) -> list[Comment]:
        """The issue's comments, oldest first."""
        owner, name = ref.repo.split("/", 1)
        issues = self._gh(installation_id).rest.issues
        items = await self._pages(
            lambda page: issues.async_list_comments(
                owner, name, ref.number, per_page=100, page=page
            )
        )
        return [
            Comment(
                id=int(c["id"]),
                author=str((c.get("user") or {}).get("login") or ""),
                author_type=str((c.get("user") or {}).get("type") or "User"),
                body=str(c.get("body") or ""),
            )
            for c in items
        ]

    async def label_actor(
        self, installation_id: int, ref: IssueRef, label: str
    ) -> LabelApplication | None:
        """Who last applied ``label`` and when, and when it was last removed before that."""
        owner, name = ref.repo.split("/", 1)
        issues = self._gh(installation_id).rest.issues
        found: LabelApplication | None = None
        removed: float | None = None
        events = await self._pages(
            lambda page: issues.async_list_events(owner, name, ref.number, per_page=100, page=page)
        )
        for event in events:  # oldest first
            kind = event.get("event")
            if (event.get("label") or {}).get("name") != label:
                continue
            when = _epoch(str(event.get("created_at") or "")) or 0.0
            if kind == "unlabeled":
                removed = when
            elif kind == "labeled":
                actor = event.get("actor") or {}
                login, kind_ = str(actor.get("login") or ""), str(actor.get("type") or "User")
                found = LabelApplication(login, kind_, when, removed)
        return found

    async def add_reaction(self, installation_id: int, ref: IssueRef, content: str) -> None:
        owner, name = ref.repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.reactions.async_create_for_issue(  # type: ignore[call-overload]
                owner,
                name,
                ref.number,
                content=content,  # type: ignore[arg-type]
            )
        )

    async def ensure_labels(
        self, installation_id: int, repo: str, labels: Mapping[str, tuple[str, str]]
    ) -> None:
        """Create the labels (name -> (color, description)) that the repository lacks."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        resp = await self._call(
            gh.rest.issues.async_list_labels_for_repo(owner, name, per_page=100)
        )
        have = {str(item["name"]).lower() for item in resp.json()}
        for label, (color, description) in labels.items():
            if label.lower() in have:
                continue
            try:
                await self._call(
                    gh.rest.issues.async_create_label(
                        owner, name, name=label, color=color, description=description
                    )
                )
            except GitHubError as exc:
                if exc.status != 422:  # created meanwhile by someone else
                    raise

    async def file(
        self, installation_id: int, repo: str, path: str, ref: str | None = None
    ) -> tuple[str, str] | None:
        """A text file's content and blob sha at ``ref`` (default branch), or None if absent."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        try:
            if ref is None:
                resp = await self._call(gh.rest.repos.async_get_content(owner, name, path))
            else:
                resp = await self._call(gh.rest.repos.async_get_content(owner, name, path, ref=ref))
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        data = resp.json()
        if not isinstance(data, Mapping) or data.get("type") != "file":
            return None
        raw = base64.b64decode(str(data.get("content") or ""))
        return raw.decode("utf-8", errors="replace"), str(data.get("sha") or "")

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str:
        owner, name = repo.split("/", 1)
        # The ref, not the branch: GitHub's branch resource carries the whole commit object.
        resp = await self._call(
            self._gh(installation_id).rest.git.async_get_ref(owner, name, f"heads/{branch}")
        )
        return str(resp.json()["object"]["sha"])

    async def report_check(
        self,
        installation_id: int,
        repo: str,
        head_sha: str,
        *,
        name: str,
        conclusion: str,
        title: str,
        summary: str,
    ) -> None:
        owner, name_ = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.checks.async_create(  # type: ignore[call-overload]
                owner,
                name_,
                name=name,
                head_sha=head_sha,
                status="completed",
                conclusion=conclusion,
                output={"title": title, "summary": summary[:65000]},
            )
        )

    # --- webhook deliveries (App JWT) ----------------------------------------------------
    async def failed_deliveries(self, since: float) -> list[tuple[int, str]]:
        """(delivery id, guid) of deliveries since ``since`` whose guid never succeeded."""
        ok: set[str] = set()
        failed: dict[str, int] = {}
        cursor: str | None = None
        for _ in range(50):  # at most 5,000 deliveries back
            kwargs: dict[str, Any] = {"per_page": 100}
            if cursor:
                kwargs["cursor"] = cursor
            resp = await self._call(self._app.rest.apps.async_list_webhook_deliveries(**kwargs))
            items = resp.json()
            old = False
            for item in items:
                when = _epoch(str(item.get("delivered_at") or ""))
                if when and when < since:
                    old = True
                    continue
                guid = str(item["guid"])
                if item.get("status") == "OK" or 200 <= int(item.get("status_code") or 0) < 300:
                    ok.add(guid)
                else:
                    failed.setdefault(guid, int(item["id"]))
            cursor = _next_cursor(resp.headers.get("link", ""))
            if old or not cursor or not items:
                break
        return [(did, guid) for guid, did in failed.items() if guid not in ok]

    async def redeliver(self, delivery_id: int) -> None:
        await self._call(self._app.rest.apps.async_redeliver_webhook_delivery(delivery_id))

    async def add_labels(self, installation_id: int, ref: IssueRef, labels: list[str]) -> None:
        owner, name = ref.repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.issues.async_add_labels(
                owner, name, ref.number, labels=labels
            )
        )

    async def remove_label(self, installation_id: int, ref: IssueRef, label: str) -> None:
        owner, name = ref.repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.issues.async_remove_label(
                    owner, name, ref.number, label
                )
            )
        except GitHubError as exc:
            if exc.status != 404:  # already absent: the goal is reached
                raise

    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None:
        """Create or edit in place the one comment of ours that carries ``marker``."""
        owner, name = ref.repo.split("/", 1)
        gh = self._gh(installation_id)
        text = body if marker in body else f"{body}\n\n{marker}"
        resp = await self._call(
            gh.rest.issues.async_list_comments(owner, name, ref.number, per_page=100)
        )
        for comment in resp.json():
            if marker in (comment.get("body") or ""):
                if comment.get("body") != text:
                    await self._call(
                        gh.rest.issues.async_update_comment(owner, name, comment["id"], body=text)
                    )
                return
        await self._call(gh.rest.issues.async_create_comment(owner, name, ref.number, body=text))

    async def permission(self, installation_id: int, repo: str, login: str) -> str:
        """The user's permission on the repository (cached for a minute)."""
        key = (repo, login)
        cached = self._perm_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        owner, name = repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.repos.async_get_collaborator_permission_level(
                    owner, name, login
                )
            )
            perm = str(resp.json().get("permission") or "none")
        except GitHubError as exc:
            if exc.status != 404:
                raise
            perm = "none"
        self._perm_cache[key] = (time.monotonic() + 60, perm)
        return perm

    # --- pull requests --------------------------------------------------------------------
    async def open_pull(
        self, installation_id: int, repo: str, *, head: str, base: str, title: str, body: str
    ) -> int:
        """Open the task's pull request, or return the open one for the same branch."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        existing = await self._call(
            gh.rest.pulls.async_list(owner, name, state="open", head=f"{owner}:{head}")
        )
        for pull in existing.json():
            if pull["head"]["ref"] == head:
                return int(pull["number"])
        resp = await self._call(
            gh.rest.pulls.async_create(owner, name, title=title, head=head, base=base, body=body)
        )
        return int(resp.json()["number"])

    async def pull_for_head(
        self, installation_id: int, repo: str, head: str
    ) -> tuple[int, str] | None:
        """The open pull request from branch ``head`` of ``repo``: (number, body), or None."""
        owner, name = repo.split("/", 1)
        resp = await self._call(
            self._gh(installation_id).rest.pulls.async_list(
                owner, name, state="open", head=f"{owner}:{head}"
            )
        )
        for pull in resp.json():
            if pull["head"]["ref"] == head:
                return int(pull["number"]), str(pull.get("body") or "")
        return None

    async def update_pull(self, installation_id: int, repo: str, number: int, *, body: str) -> None:
        """Replace a pull request's body."""
        owner, name = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.pulls.async_update(owner, name, number, body=body)
        )

    async def reviews(self, installation_id: int, repo: str, number: int) -> list[Review]:
        """A pull request's submitted reviews, oldest first (everyone's: callers filter)."""
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        items = await self._pages(
            lambda page: pulls.async_list_reviews(owner, name, number, per_page=100, page=page)
        )
        found: list[Review] = []
        for item in items:
            user = item.get("user") or {}
            found.append(
                Review(
                    id=int(item["id"]),
                    author=str(user.get("login") or ""),
                    author_type=str(user.get("type") or "User"),
                    state=str(item.get("state") or "").upper(),
                    body=str(item.get("body") or ""),
                    commit_id=item.get("commit_id"),
                )
            )
        return found

    async def review_comments(
        self, installation_id: int, repo: str, number: int
    ) -> list[ReviewComment]:
        """A pull request's inline review comments, oldest first."""
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        items = await self._pages(
            lambda page: pulls.async_list_review_comments(
                owner, name, number, per_page=100, page=page
            )
        )
        found: list[ReviewComment] = []
        for item in items:
            line = item.get("line") or item.get("original_line")
            review_id = item.get("pull_request_review_id")
            found.append(
                ReviewComment(
                    id=int(item["id"]),
                    review_id=int(review_id) if review_id is not None else None,
                    author=str((item.get("user") or {}).get("login") or ""),
                    path=str(item.get("path") or ""),
                    line=int(line) if isinstance(line, int) else None,
                    body=str(item.get("body") or ""),
                )
            )
        return found

    async def required_checks(
        self, installation_id: int, repo: str, branch: str
    ) -> tuple[str, ...]:
        key = (repo, branch)
        cached = self._required_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        owner, name = repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.repos.async_get_status_checks_protection(
                    owner, name, branch
                )
            )
            data = resp.json()
            names = [c["context"] for c in data.get("checks") or ()] or list(
                data.get("contexts") or ()
            )
            required = tuple(dict.fromkeys(names))
        except GitHubError as exc:
            if exc.status != 404:
                raise
            required = ()
        self._required_cache[key] = (time.monotonic() + 60, required)
        return required

    async def pull(
        self, installation_id: int, repo: str, number: int, extra_required: tuple[str, ...] = ()
    ) -> PullSnapshot:
        """One fresh snapshot of a pull request: state, mergeability, checks on its head."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        data = (await self._call(gh.rest.pulls.async_get(owner, name, number))).json()
        head = data["head"]["sha"]
        checks: dict[str, tuple[str, str | None]] = {}
        runs = await self._call(gh.rest.checks.async_list_for_ref(owner, name, head, per_page=100))
        # Newest run per name wins (GitHub lists newest first).
        for run in runs.json().get("check_runs", []):
            checks.setdefault(run["name"], (run["status"], run.get("conclusion")))
        status = await self._call(
            gh.rest.repos.async_get_combined_status_for_ref(owner, name, head)
        )
        for item in status.json().get("statuses", []):
            state = item["state"]
            done = state != "pending"
            conclusion = {"success": "success", "failure": "failure", "error": "failure"}.get(state)
            checks.setdefault(item["context"], ("completed" if done else "in_progress", conclusion))
        base = data["base"]["ref"]
        required = await self.required_checks(installation_id, repo, base)
        return PullSnapshot(
            number=number,
            state=data["state"],
            merged=bool(data.get("merged")),
            head_sha=head,
            head_ref=data["head"]["ref"],
            base_ref=base,
            mergeable=data.get("mergeable"),
            mergeable_state=str(data.get("mergeable_state") or "unknown"),
            checks=checks,
            required=tuple(dict.fromkeys(required + extra_required)),
            merge_sha=data.get("merge_commit_sha") if data.get("merged") else None,
        )

    async def merge(
        self,
        installation_id: int,
        repo: str,
        number: int,
        *,
        sha: str,
        method: Literal["merge", "squash", "rebase"],
        title: str,
    ) -> MergeOutcome:
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        try:
            resp = await self._call(
                pulls.async_merge(
                    owner, name, number, sha=sha, merge_method=method, commit_title=title
                )
            )
        except GitHubError as exc:
            if exc.status in (405, 409, 422):
                return MergeOutcome(False, None, exc.status, exc.message)
            raise
        data = resp.json()
        return MergeOutcome(bool(data.get("merged")), data.get("sha"), 200, data.get("message", ""))

    async def update_branch(self, installation_id: int, repo: str, number: int, sha: str) -> bool:
        owner, name = repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.pulls.async_update_branch(
                    owner, name, number, expected_head_sha=sha
                )
            )
        except GitHubError as exc:
            if exc.status == 422:
                return False
            raise
        return True

    async def delete_branch(self, installation_id: int, repo: str, branch: str) -> None:
        owner, name = repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.git.async_delete_ref(owner, name, f"heads/{branch}")
            )
        except GitHubError as exc:
            if exc.status not in (404, 422):  # already gone
                raise

    # --- GitHub Actions ---------------------------------------------------------------------
    async def dispatch_workflow(
        self, installation_id: int, repo: str, workflow: str, ref: str, inputs: dict[str, str]
    ) -> None:
        """Start a ``workflow_dispatch`` run of ``workflow`` (its file name) on ``ref``.

        Only ``ref`` and ``inputs`` are sent: githubkit's body validation silently drops fields
        its schema lacks (research §6.6), and older GHES refuse ``return_run_details``.
        """
        owner, name = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.actions.async_create_workflow_dispatch(
                owner, name, workflow, ref=ref, inputs=inputs
            )
        )
