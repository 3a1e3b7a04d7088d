"""What GitHub does when a push moves a pull request's base over the pull request's head.

A pull request is merged "indirectly" when its head commit becomes reachable from its base
branch by any push, not only through the merge button: GitHub marks it merged (``merged``,
``merged_at``, ``merged_by`` the pusher, ``merge_commit_sha`` the commit that brought the head
in), closes it with the ``pull_request`` ``closed`` webhook carrying ``merged: true``, and closes
the issues it names with a closing keyword when the base is the default branch
(``content/pull-requests/reference/pull-request-merges.md``; merge-anchors.md section 5). A merge
queue that fast-forwards its base to a tested merge commit relies on exactly this.

Also here: the simulated CI a push starts on branches the repository runs CI for on push
(``Repo.ci_push``, as a workflow's ``on: push: branches``).
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any, Protocol

from fakehub.gitstore import ZERO_SHA, GitStore
from fakehub.records import Issue, Repo, User
from fakehub.state import State


class PullEvents(Protocol):
    """What of :class:`~fakehub.hub.Hub` a merge by push uses."""

    state: State
    store: GitStore

    def emit_pull(self, issue: Issue, action: str, sender: User, **extra: Any) -> None: ...

    def close_referenced(self, pr: Issue, user: User) -> None: ...


def runs_ci_on_push(repo: Repo, branch: str) -> bool:
    return any(fnmatch.fnmatchcase(branch, pattern) for pattern in repo.ci_push)


def merge_by_push(
    hub: PullEvents, repo: Repo, branch: str, before: str, after: str, user: User
) -> None:
    """Mark merged every open pull request into ``branch`` whose head the push brought in."""
    if before == ZERO_SHA or after == ZERO_SHA:
        return
    full = repo.full_name
    found: list[Issue] = [
        i
        for i in hub.state.open_pulls(repo)
        if i.pull is not None
        and i.pull.base_ref == branch
        and hub.store.is_ancestor(full, i.pull.head_sha, after)
        and not hub.store.is_ancestor(full, i.pull.head_sha, before)
    ]
    if not found:
        return
    line = hub.store.first_parents(full, before, after)
    for issue in sorted(found, key=lambda i: i.number):
        pull = issue.pull
        assert pull is not None
        head = pull.head_sha
        merge_sha = next((c for c in line if hub.store.is_ancestor(full, head, c)), after)
        now = time.time()
        with hub.state.lock:
            pull.merged, pull.merged_at, pull.merge_commit_sha = True, now, merge_sha
            pull.merged_by = user
            issue.state, issue.closed_at, issue.updated_at = "closed", now, now
            issue.closed_by = user
        hub.state.record(
            "merged_by_push",
            repo=full,
            pr=issue.number,
            base=branch,
            head_sha=head,
            merge_sha=merge_sha,
            pushed=after,
            by=user.login,
        )
        hub.emit_pull(issue, "closed", user)
        if branch == repo.default_branch:
            hub.close_referenced(issue, user)
