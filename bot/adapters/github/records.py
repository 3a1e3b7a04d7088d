"""Plain values the adapter returns: no githubkit type leaves the package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from bot.core.model import IssueRef


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


def iso_epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
