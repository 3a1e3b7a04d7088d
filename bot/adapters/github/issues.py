"""Issues: reading them, their dependencies and comments, and writing labels and comments."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from bot.adapters.github.client import AdapterBase, GitHubError
from bot.adapters.github.records import Comment, IssueInfo, LabelApplication, iso_epoch
from bot.core.model import IssueRef

_REPO_URL = re.compile(r"/repos/([^/]+/[^/]+)$")

ReactionContent = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
_REACTIONS: Mapping[str, ReactionContent] = {c: c for c in get_args(ReactionContent)}


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


def issue_repo(data: Mapping[str, Any], default: str) -> str:
    """The ``owner/name`` an issue object belongs to (cross-repository references carry it)."""
    match = _REPO_URL.search(str(data.get("repository_url") or ""))
    return match.group(1) if match else default


class IssueCalls(AdapterBase):
    """Issues, their labels, reactions and comments."""

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
        issues = self._gh(installation_id).rest.issues

        async def children() -> list[Any]:
            try:
                resp = await self._call(
                    issues.async_list_sub_issues(owner, name, ref.number, per_page=100)
                )
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                return []
            return list(resp.json())

        deps, subs = await asyncio.gather(  # both at once: one round trip on the intake path
            self._call(
                issues.async_list_dependencies_blocked_by(owner, name, ref.number, per_page=100)
            ),
            children(),
        )
        return [IssueRef(issue_repo(i, ref.repo), int(i["number"])) for i in [*deps.json(), *subs]]

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
            when = iso_epoch(str(event.get("created_at") or "")) or 0.0
            if kind == "unlabeled":
                removed = when
            elif kind == "labeled":
                actor = event.get("actor") or {}
                login, kind_ = str(actor.get("login") or ""), str(actor.get("type") or "User")
                found = LabelApplication(login, kind_, when, removed)
        return found

    async def add_reaction(self, installation_id: int, ref: IssueRef, content: str) -> None:
        reaction = _REACTIONS.get(content)
        if reaction is None:
            raise ValueError(f"not a GitHub reaction: {content!r}")
        owner, name = ref.repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.reactions.async_create_for_issue(
                owner, name, ref.number, content=reaction
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
        """Create or edit in place the one comment of ours that carries ``marker``.

        The comment's id is remembered, so later edits skip listing the issue's comments; if
        that comment was deleted meanwhile, it is looked for again (and made anew)."""
        owner, name = ref.repo.split("/", 1)
        gh = self._gh(installation_id)
        text = body if marker in body else f"{body}\n\n{marker}"
        key = (ref.repo, ref.number, marker)
        known = self._comment_ids.get(key)
        if known is not None:
            try:
                await self._call(gh.rest.issues.async_update_comment(owner, name, known, body=text))
                return
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                self._comment_ids.pop(key, None)
        resp = await self._call(
            gh.rest.issues.async_list_comments(owner, name, ref.number, per_page=100)
        )
        for comment in resp.json():
            if marker in (comment.get("body") or ""):
                if comment.get("body") != text:
                    await self._call(
                        gh.rest.issues.async_update_comment(owner, name, comment["id"], body=text)
                    )
                self._comment_ids[key] = int(comment["id"])
                return
        made = await self._call(
            gh.rest.issues.async_create_comment(owner, name, ref.number, body=text)
        )
        self._comment_ids[key] = int(made.json()["id"])

    async def issue_labels(self, installation_id: int, ref: IssueRef) -> set[str]:
        """The names of the labels on an issue now."""
        owner, name = ref.repo.split("/", 1)
        resp = await self._call(
            self._gh(installation_id).rest.issues.async_list_labels_on_issue(
                owner, name, ref.number, per_page=100
            )
        )
        return {str(item["name"]) for item in resp.json()}

    async def close_issue(
        self, installation_id: int, ref: IssueRef, reason: Literal["completed", "not_planned"]
    ) -> None:
        """Close an issue with GitHub's ``state_reason`` (a plan done, or a task dropped)."""
        owner, name = ref.repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.issues.async_update(
                owner, name, ref.number, state="closed", state_reason=reason
            )
        )
