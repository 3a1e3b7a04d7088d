"""An in-memory GitHub for bot tests that do not need fakehub: every verb of
``bot.ports.GitHubPort``, checked against it by mypy (see the end of this module).

It records the calls tests look at in ``calls``; a test changes an answer by setting the data
(``issues``, ``deps``, ``perms``, ``label_applications``) or with ``monkeypatch.setattr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from bot.adapters.github import Comment, IssueInfo, LabelApplication, MergeOutcome, RepoInfo
from bot.core.model import IssueRef
from bot.core.steward import PullSnapshot, Review, ReviewComment
from bot.ports import GitHubPort


class FakeGitHub:
    def __init__(self) -> None:
        self.issues: dict[IssueRef, IssueInfo] = {}
        self.deps: dict[IssueRef, list[IssueRef]] = {}
        self.perms: dict[str, str] = {}
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.labels: dict[IssueRef, set[str]] = {}  # labels added or removed since add_issue
        self.label_applications: dict[IssueRef, LabelApplication] = {}
        self.installation_ids: list[int] = []
        self.repos: dict[int, list[RepoInfo]] = {}

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

    # --- the App and its installations ---------------------------------------------------------
    async def app_slug(self) -> str:
        return "stoneforge"

    async def installations(self) -> list[int]:
        self.calls.append(("installations", ()))
        return list(self.installation_ids)

    async def installation_repos(self, installation_id: int) -> list[RepoInfo]:
        self.calls.append(("installation_repos", (installation_id,)))
        return list(self.repos.get(installation_id, []))

    async def failed_deliveries(self, since: float) -> list[tuple[int, str]]:
        return []

    async def redeliver(self, delivery_id: int) -> None:
        self.calls.append(("redeliver", (delivery_id,)))

    async def repo_token(self, installation_id: int, repo: str, *, write: bool = True) -> str:
        return f"token-{repo}"

    async def revoke_token(self, token: str) -> None:
        self.calls.append(("revoke_token", (token,)))

    async def dispatch_workflow(
        self, installation_id: int, repo: str, workflow: str, ref: str, inputs: dict[str, str]
    ) -> None:
        self.calls.append(("dispatch_workflow", (repo, workflow, ref)))

    # --- repositories --------------------------------------------------------------------------
    async def repo(self, installation_id: int, repo: str) -> RepoInfo:
        return RepoInfo(repo, 1, "main", f"https://example.invalid/{repo}.git")

    async def file(
        self, installation_id: int, repo: str, path: str, ref: str | None = None
    ) -> tuple[str, str] | None:
        return None  # no .github/stoneforge.yml: the defaults

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str:
        return "0" * 39 + "1"

    async def ensure_labels(
        self, installation_id: int, repo: str, labels: Mapping[str, tuple[str, str]]
    ) -> None:
        self.calls.append(("ensure_labels", (repo, tuple(sorted(labels)))))

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
        self.calls.append(("report_check", (repo, name, conclusion)))

    async def write_check(
        self,
        installation_id: int,
        repo: str,
        head_sha: str,
        *,
        name: str,
        conclusion: str | None,
        title: str,
        summary: str,
        run_id: int | None = None,
    ) -> int:
        self.calls.append(("write_check", (repo, head_sha, name, conclusion, title)))
        return run_id or len(self.calls)

    async def permission(self, installation_id: int, repo: str, login: str) -> str:
        return self.perms.get(login, "none")

    # --- issues --------------------------------------------------------------------------------
    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None:
        self.calls.append(("issue", (ref,)))
        return self.issues.get(ref)

    async def labeled_issues(self, installation_id: int, repo: str, label: str) -> list[IssueInfo]:
        return [i for i in self.issues.values() if i.repo == repo and label in i.labels]

    async def blocked_by(self, installation_id: int, ref: IssueRef) -> list[IssueRef]:
        return list(self.deps.get(ref, []))

    async def sub_issues(self, installation_id: int, ref: IssueRef) -> list[IssueInfo]:
        return []

    async def comments(self, installation_id: int, ref: IssueRef) -> list[Comment]:
        return []

    async def label_actor(
        self, installation_id: int, ref: IssueRef, label: str
    ) -> LabelApplication | None:
        return self.label_applications.get(ref)

    async def add_reaction(self, installation_id: int, ref: IssueRef, content: str) -> None:
        self.calls.append(("add_reaction", (ref, content)))

    async def react_to_comment(
        self, installation_id: int, repo: str, comment_id: int, content: str
    ) -> None:
        self.calls.append(("react_to_comment", (repo, comment_id, content)))

    async def reply(self, installation_id: int, ref: IssueRef, body: str) -> int:
        self.calls.append(("reply", (ref, body)))
        return len(self.calls)

    async def add_labels(self, installation_id: int, ref: IssueRef, labels: list[str]) -> None:
        self.calls.append(("add_labels", (ref, tuple(labels))))
        self.labels.setdefault(ref, set()).update(labels)

    async def remove_label(self, installation_id: int, ref: IssueRef, label: str) -> None:
        self.calls.append(("remove_label", (ref, label)))
        self.labels.get(ref, set()).discard(label)

    async def issue_labels(self, installation_id: int, ref: IssueRef) -> set[str]:
        self.calls.append(("issue_labels", (ref,)))
        return set(self.labels.get(ref, set()))

    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None:
        self.calls.append(("comment", (ref, body)))

    # --- pull requests -------------------------------------------------------------------------
    async def open_pull(
        self, installation_id: int, repo: str, *, head: str, base: str, title: str, body: str
    ) -> int:
        self.calls.append(("open_pull", (repo, head)))
        return 1

    async def pull_for_head(
        self, installation_id: int, repo: str, head: str
    ) -> tuple[int, str] | None:
        return None

    async def update_pull(self, installation_id: int, repo: str, number: int, *, body: str) -> None:
        self.calls.append(("update_pull", (repo, number)))

    async def pull(
        self, installation_id: int, repo: str, number: int, extra_required: tuple[str, ...] = ()
    ) -> PullSnapshot:
        raise LookupError(f"no pull request {repo}#{number} in this fake")

    async def reviews(self, installation_id: int, repo: str, number: int) -> list[Review]:
        return []

    async def review_comments(
        self, installation_id: int, repo: str, number: int
    ) -> list[ReviewComment]:
        return []

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
        self.calls.append(("merge", (repo, number, sha)))
        return MergeOutcome(False, None, 405, "not in this fake")

    async def update_branch(self, installation_id: int, repo: str, number: int, sha: str) -> bool:
        return False

    async def delete_branch(self, installation_id: int, repo: str, branch: str) -> None:
        self.calls.append(("delete_branch", (repo, branch)))

    async def retarget_pull(self, installation_id: int, repo: str, number: int, base: str) -> bool:
        self.calls.append(("retarget_pull", (repo, number, base)))
        return True

    async def contains(self, installation_id: int, repo: str, commit: str, head: str) -> bool:
        return commit == head

    async def commit_checks(
        self, installation_id: int, repo: str, sha: str
    ) -> tuple[dict[str, tuple[str, str | None]], dict[str, int]]:
        return {}, {}

    async def set_branch(self, installation_id: int, repo: str, branch: str, sha: str) -> None:
        self.calls.append(("set_branch", (repo, branch, sha)))

    async def fast_forward(self, installation_id: int, repo: str, branch: str, sha: str) -> bool:
        self.calls.append(("fast_forward", (repo, branch, sha)))
        return True

    async def merge_into(
        self, installation_id: int, repo: str, branch: str, head: str, message: str
    ) -> tuple[str, str] | None:
        self.calls.append(("merge_into", (repo, branch, head)))
        return None

    async def rerun_check(self, installation_id: int, repo: str, check_run_id: int) -> bool:
        self.calls.append(("rerun_check", (repo, check_run_id)))
        return False

    async def check_failures(
        self, installation_id: int, repo: str, sha: str, names: tuple[str, ...]
    ) -> tuple[str, ...]:
        return tuple(f"{name}: failure" for name in names)


def _conforms(fake: FakeGitHub) -> GitHubPort:
    return fake  # mypy: the fake is a GitHubPort


class RecordingGitHub(FakeGitHub):
    """FakeGitHub whose every trigger label was applied by ``lead``."""

    async def label_actor(
        self, installation_id: int, ref: IssueRef, label: str
    ) -> LabelApplication | None:
        return LabelApplication("lead", "User", 0.0, None)
