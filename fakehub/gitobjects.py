"""The values the git store deals in: its errors, commit facts, identities, and the environment
every git process of fakehub runs in (the user's and the system's git configuration ignored)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

ZERO_SHA = "0" * 40


class GitStoreError(Exception):
    """A git command failed, or an argument was refused."""


class NotFound(GitStoreError, LookupError):
    """The repository, branch or commit does not exist."""


class RefMoved(GitStoreError):
    """The branch moved between reading it and updating it (a concurrent push won)."""


class NotFastForward(RefMoved):
    """A non-forced ref update whose new commit does not contain the branch's tip."""


class MergeConflict(GitStoreError):
    """The three-way merge has conflicts; ``paths`` lists them when known."""

    def __init__(self, message: str = "merge conflict", paths: Sequence[str] = ()) -> None:
        super().__init__(message if not paths else f"{message}: {', '.join(paths)}")
        self.paths: list[str] = list(paths)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    message: str
    author_name: str
    author_email: str
    author_date: str  # ISO 8601 with Z
    committer_name: str
    committer_email: str
    committer_date: str


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for git that ignores the user's and the system's git configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        LC_ALL="C",
    )
    env.update(extra or {})
    return env


def identity_env(author: Identity, committer: Identity, when: int | None = None) -> dict[str, str]:
    date = f"{int(time.time()) if when is None else when} +0000"
    return {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": committer.name,
        "GIT_COMMITTER_EMAIL": committer.email,
        "GIT_COMMITTER_DATE": date,
    }


def iso_time(epoch: str) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checked_rev(value: str) -> str:
    """Refuse revisions that git could read as options."""
    if not value or value.startswith("-") or "\0" in value:
        raise GitStoreError(f"invalid revision {value!r}")
    return value
