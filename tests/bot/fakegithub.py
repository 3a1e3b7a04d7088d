"""An in-memory stand-in for ``GitHubAdapter`` for bot tests that do not need fakehub."""

from __future__ import annotations

from bot.adapters.github import IssueInfo, RepoInfo
from bot.core.model import IssueRef


class FakeGitHub:
    def __init__(self) -> None:
        self.issues: dict[IssueRef, IssueInfo] = {}
        self.deps: dict[IssueRef, list[IssueRef]] = {}
        self.perms: dict[str, str] = {}
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.labels: dict[IssueRef, set[str]] = {}  # labels added or removed since add_issue

    def add_issue(
        self,
        repo: str,
        number: int,
        *,
        body: str = "",
        labels: tuple[str, ...] = ("agent-ready",),
        state: str = "open",
        author: str = "lead",
    ) -> IssueInfo:
        info = IssueInfo(
            repo,
            number,
            1_000_000 + number,
            f"Task {number}",
            body,
            state,
            None,
            labels,
            False,
            author,
        )
        self.issues[info.ref] = info
        self.labels[info.ref] = set(labels)
        return info

    async def app_slug(self) -> str:
        return "stoneforge"

    async def installations(self) -> list[int]:
        return []

    async def installation_repos(self, inst: int) -> list[RepoInfo]:
        return []

    async def repo(self, inst: int, repo: str) -> RepoInfo:
        return RepoInfo(repo, 1, "main", f"https://example.invalid/{repo}.git")

    async def file(self, inst: int, repo: str, path: str, ref: str | None = None) -> None:
        return None  # no .github/stoneforge.yml: the defaults

    async def ensure_labels(self, inst: int, repo: str, labels: dict[str, object]) -> None:
        self.calls.append(("ensure_labels", (repo, tuple(sorted(labels)))))

    async def issue(self, inst: int, ref: IssueRef) -> IssueInfo | None:
        self.calls.append(("issue", (ref,)))
        return self.issues.get(ref)

    async def blocked_by(self, inst: int, ref: IssueRef) -> list[IssueRef]:
        return list(self.deps.get(ref, []))

    async def permission(self, inst: int, repo: str, login: str) -> str:
        return self.perms.get(login, "none")

    async def add_labels(self, inst: int, ref: IssueRef, labels: list[str]) -> None:
        self.calls.append(("add_labels", (ref, tuple(labels))))
        self.labels.setdefault(ref, set()).update(labels)

    async def remove_label(self, inst: int, ref: IssueRef, label: str) -> None:
        self.calls.append(("remove_label", (ref, label)))
        self.labels.get(ref, set()).discard(label)

    async def issue_labels(self, inst: int, ref: IssueRef) -> set[str]:
        self.calls.append(("issue_labels", (ref,)))
        return set(self.labels.get(ref, set()))

    async def upsert_comment(self, inst: int, ref: IssueRef, marker: str, body: str) -> None:
        self.calls.append(("comment", (ref, body)))
