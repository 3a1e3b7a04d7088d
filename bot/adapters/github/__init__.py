"""GitHub adapter: the only package of the bot that imports githubkit.

Every method is a domain verb taking and returning plain values or core models; no githubkit
type, URL or header leaves this package. HTTP failures are classified here once
(:class:`GitHubError` with ``status``), so nothing else inspects status codes.

The adapter is one class composed of one part per GitHub area: ``client`` (auth, transport,
errors, pagination), ``apps`` (App JWT calls), ``repos``, ``issues``, ``pulls``, ``gate`` (the
merge queue, code owners), ``stacks`` (stacked pull requests), ``filing`` (a plan's issues and
links), ``comments`` (comment commands' reaction and reply) and ``gitdata`` (refs and merge
commits: the speculative merge queue); the values it returns are in ``records``.
"""

from __future__ import annotations

from bot.adapters.github.apps import AppCalls
from bot.adapters.github.client import GitHubError
from bot.adapters.github.comments import CommentCalls
from bot.adapters.github.filing import FilingCalls
from bot.adapters.github.gate import EnqueueOutcome, QueueCalls
from bot.adapters.github.gitdata import GitCalls, MergeConflict
from bot.adapters.github.issues import IssueCalls, issue_repo
from bot.adapters.github.pacing import WriteBudget
from bot.adapters.github.pulls import PullCalls
from bot.adapters.github.records import (
    Comment,
    IssueInfo,
    LabelApplication,
    MergeOutcome,
    RepoInfo,
)
from bot.adapters.github.repos import RepoCalls
from bot.adapters.github.stacks import StackCalls

__all__ = [
    "Comment",
    "EnqueueOutcome",
    "GitHubAdapter",
    "GitHubError",
    "IssueInfo",
    "LabelApplication",
    "MergeConflict",
    "MergeOutcome",
    "RepoInfo",
    "WriteBudget",
    "issue_repo",
]


class GitHubAdapter(
    AppCalls,
    RepoCalls,
    IssueCalls,
    PullCalls,
    QueueCalls,
    StackCalls,
    FilingCalls,
    CommentCalls,
    GitCalls,
):
    """GitHub through githubkit with App authentication and a configurable base URL."""
