"""GitHub's merge queue on fakehub: enqueue, build a merge group, test it, land it or dequeue.

A base branch requires the queue when an active ruleset on it has a ``merge_queue`` rule
(``fakehub.rulesets.merge_queue``); then ``PUT .../pulls/{n}/merge`` answers 405 and pull
requests land only through ``PUT .../pulls/{n}/merge-async`` (``merge_action: merge_queue``, or
``default``).

What is modelled, per (repository, base branch), entries in the order they were enqueued:

- ``enqueue``: the request's basic checks answer at once (400 closed or draft; 200 already
  merged or queued); the rules are then checked "in the background" (at once here): a head that
  moved, conflicts or a blocked merge state fail the request (``GET .../merge-async/{uuid}``
  says ``failed``). An enqueued pull request gets ``pull_request.enqueued``.
- One entry is built at a time (``max_entries_to_build`` is treated as 1 and groups hold one
  pull request, whatever ``grouping_strategy`` says): the front entry's group is a real merge
  commit of the base tip and the pull request's head, on the branch
  ``gh-readonly-queue/{base}/pr-{n}-{head sha}`` (a ``push``), announced by
  ``merge_group.checks_requested``; fakehub's CI runs on its head.
- When every required check (classic protection's and the rulesets') is green on the group's
  head, the base is fast-forwarded to exactly that commit, the pull request is closed as merged
  (``pull_request.closed``, ``merge_group.destroyed`` with ``merged``,
  ``pull_request.dequeued`` with ``MERGE``) and the group's branch deleted. A red required
  check dequeues it instead (``merge_group.destroyed`` with ``dequeued``,
  ``pull_request.dequeued`` with ``CI_FAILURE``); a conflict with the base dequeues it with
  ``MERGE_CONFLICT``; a base that moved under a group destroys it (``invalidated``) and builds
  it again. A queue has no check time-out here (``check_response_timeout_minutes``).

The work runs on one background thread (GitHub's queue is asynchronous too), so no request or
CI thread ever holds a lock while the queue takes the git store's and the state's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from fakehub import rulesets
from fakehub.auth import ApiError
from fakehub.gitstore import ZERO_SHA, GitStore, Identity, MergeConflict, RefMoved
from fakehub.records import Issue, Repo, User
from fakehub.state import State

log = logging.getLogger(__name__)

QUEUE_MESSAGE = "Repository rule violations found\n\nChanges must be made through the merge queue"
GREEN = ("success", "neutral", "skipped")
QUEUE_BOT = "github-merge-queue[bot]"


class Hub(Protocol):
    """What the queue uses of :class:`fakehub.hub.Hub` (which holds the queue)."""

    state: State
    store: GitStore

    def merge(
        self,
        issue: Issue,
        user: User,
        *,
        sha: str | None,
        method: str,
        title: str | None,
        message: str | None,
    ) -> str: ...

    def merge_state(self, issue: Issue) -> tuple[bool | None, str, str | None]: ...

    def emit(self, repo: Repo, event: str, body: dict[str, Any], sender: User) -> None: ...

    def emit_pull(self, issue: Issue, action: str, sender: User, **extra: Any) -> None: ...

    def close_referenced(self, pr: Issue, user: User) -> None: ...

    def on_branch_moved(
        self, repo: Repo, ref: str, before: str, after: str, user: User
    ) -> None: ...

    def run_ci(self, repo: Repo, sha: str, branch: str | None) -> None: ...

    def simple_commit(self, repo: Repo, sha: str) -> dict[str, Any]: ...


@dataclass(eq=False)
class Entry:
    issue: Issue
    head_sha: str
    user: User
    uuid: str
    enqueued_at: float
    group_sha: str | None = None
    group_branch: str | None = None
    base_sha: str | None = None


class MergeQueue:
    """The merge queues of one hub (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()  # guards the dicts below only; never held over a call
        self._queues: dict[tuple[int, str], list[Entry]] = {}
        self._results: dict[tuple[int, int, str], dict[str, Any]] = {}  # (repo, pr, uuid)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fakehub-queue")

    # -- requests ---------------------------------------------------------------------------
    def requires(self, repo: Repo, branch: str) -> bool:
        return rulesets.merge_queue(repo, branch) is not None

    def queued(self, issue: Issue) -> Entry | None:
        assert issue.pull is not None
        with self._lock:
            line = self._queues.get((issue.repo.id, issue.pull.base_ref), [])
            return next((e for e in line if e.issue is issue), None)

    def merge_async(
        self, issue: Issue, user: User, *, sha: str | None, action: str, method: str
    ) -> tuple[int, dict[str, Any]]:
        """``PUT .../merge-async``: (status, body)."""
        pull = issue.pull
        assert pull is not None
        if pull.merged:
            sha_ = pull.merge_commit_sha or ""
            return 200, {"status": "merged", "details": {"message": "Already merged", "sha": sha_}}
        if issue.state != "open":
            return 400, {"status": "failed", "details": {"message": "Pull request is closed"}}
        if pull.draft:
            return 400, {"status": "failed", "details": {"message": "Pull request is a draft"}}
        if self.queued(issue) is not None:
            return 200, {"status": "enqueued", "details": {"message": "Already in the queue"}}
        ident = str(uuid.uuid4())
        pending = {
            "status": "pending",
            "details": {
                "message": "The merge request is pending",
                "uuid": ident,
                "merge_method": method,
                "merge_action": action,
                "expected_head_sha": sha or pull.head_sha,
            },
        }
        self.hub.state.record(
            "merge_async", repo=issue.repo.full_name, pr=issue.number, action=action, sha=sha
        )
        key = (issue.repo.id, issue.number, ident)
        with self._lock:
            self._results[key] = pending
        outcome = self._start(issue, user, ident, sha=sha, action=action, method=method)
        if outcome is not None:
            with self._lock:
                self._results[key] = outcome
        return 202, pending

    def result(self, issue: Issue, ident: str) -> dict[str, Any] | None:
        with self._lock:
            return self._results.get((issue.repo.id, issue.number, ident))

    def _start(
        self, issue: Issue, user: User, ident: str, *, sha: str | None, action: str, method: str
    ) -> dict[str, Any] | None:
        """The rules, checked "in the background": merge directly or fail (the outcome), or
        enqueue (None: the entry keeps its result up to date)."""
        pull = issue.pull
        assert pull is not None
        queue = self.requires(issue.repo, pull.base_ref)
        if sha and sha != pull.head_sha:
            return _failed("Head branch was modified. Review and try the merge again.")
        if action == "direct_merge" or (action == "default" and not queue):
            try:
                new = self.hub.merge(issue, user, sha=sha, method=method, title=None, message=None)
            except ApiError as err:
                return _failed(err.message)
            return {"status": "merged", "details": {"message": "Merged", "sha": new}}
        if not queue:
            return _failed("Merge queue is not enabled for the base branch")
        _, state, why = self.hub.merge_state(issue)
        if state in ("dirty", "blocked"):  # "behind" is fine: the queue tests on the base
            return _failed(why or "Pull Request is not mergeable")
        entry = Entry(issue, pull.head_sha, user, ident, time.time())
        with self._lock:
            self._results[(issue.repo.id, issue.number, ident)] = {
                "status": "enqueued",
                "details": {"message": "Added to the merge queue"},
            }
            self._queues.setdefault((issue.repo.id, pull.base_ref), []).append(entry)
        self.hub.state.record(
            "enqueued", repo=issue.repo.full_name, pr=issue.number, head_sha=pull.head_sha
        )
        self.hub.emit_pull(issue, "enqueued", user)
        self._kick(issue.repo, pull.base_ref)
        return None

    # -- the queue's work -------------------------------------------------------------------
    def on_checks(self, repo: Repo, sha: str) -> None:
        """A check completed, or a status was set, on ``sha``: a group head's may decide it."""
        with self._lock:
            bases = [
                base
                for (repo_id, base), line in self._queues.items()
                if repo_id == repo.id and line and line[0].group_sha == sha
            ]
        for base in bases:
            self._kick(repo, base)

    def on_head_moved(self, issue: Issue) -> None:
        """A queued pull request's head moved: GitHub takes it out of the queue."""
        if self.queued(issue) is not None and issue.pull is not None:
            self._kick(issue.repo, issue.pull.base_ref)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _kick(self, repo: Repo, base: str) -> None:
        self._pool.submit(self._process, repo, base)

    def _process(self, repo: Repo, base: str) -> None:
        try:
            while self._step(repo, base):
                pass
        except Exception:  # a queue that crashed must be visible, not silent
            log.exception("merge queue %s:%s failed", repo.full_name, base)

    def _front(self, repo: Repo, base: str) -> Entry | None:
        with self._lock:
            line = self._queues.get((repo.id, base)) or []
            return line[0] if line else None

    def _step(self, repo: Repo, base: str) -> bool:
        """One move of the front entry; whether anything changed (then look again)."""
        entry = self._front(repo, base)
        if entry is None:
            return False
        pull = entry.issue.pull
        assert pull is not None
        if entry.issue.state != "open" or pull.head_sha != entry.head_sha:
            self._dequeue(entry, "UNKNOWN_REMOVAL_REASON")
            return True
        if entry.group_sha is None:
            return self._build(entry, repo, base)
        verdict = self._verdict(repo, base, entry.group_sha)
        if verdict == "red":
            self._dequeue(entry, "CI_FAILURE")
            return True
        if verdict == "green":
            self._land(entry, repo, base)
            return True
        return False

    def _verdict(self, repo: Repo, base: str, sha: str) -> str:
        protection = repo.protection.get(base)
        contexts = list(protection.contexts if protection else ())
        contexts += [c for c in rulesets.required_contexts(repo, base) if c not in contexts]
        states = self.hub.state.check_states(repo, sha)
        pending = False
        for context in contexts:
            state = states.get(context)
            if state in (None, "pending"):
                pending = True
            elif state not in GREEN:
                return "red"
        return "pending" if pending else "green"

    def _build(self, entry: Entry, repo: Repo, base: str) -> bool:
        store, full = self.hub.store, repo.full_name
        base_sha = store.ref_sha(full, base)
        if base_sha is None:
            self._dequeue(entry, "BRANCH_PROTECTIONS")
            return True
        n = entry.issue.number
        message = (
            f"Merge pull request #{n} from {repo.owner.login}/{entry.issue.pull.head_ref}"  # type: ignore[union-attr]
            f"\n\n{entry.issue.title}"
        )
        try:
            sha = store.merge_commit(
                full, base_sha, entry.head_sha, message=message, committer=_GITHUB
            )
        except MergeConflict:
            self._dequeue(entry, "MERGE_CONFLICT")
            return True
        branch = f"gh-readonly-queue/{base}/pr-{n}-{entry.head_sha}"
        store.set_branch(full, branch, sha)
        entry.group_sha, entry.group_branch, entry.base_sha = sha, branch, base_sha
        bot = self._bot()
        self.hub.state.record(
            "merge_group", repo=full, pr=n, base=base, base_sha=base_sha, head_sha=sha, ref=branch
        )
        self.hub.on_branch_moved(repo, f"refs/heads/{branch}", ZERO_SHA, sha, bot)
        self._emit_group(entry, repo, base, "checks_requested")
        self.hub.run_ci(repo, sha, branch)
        return self._verdict(repo, base, sha) != "pending"

    def _land(self, entry: Entry, repo: Repo, base: str) -> None:
        """Fast-forward the base to exactly the group's head; the pull request is merged."""
        issue, pull, hub = entry.issue, entry.issue.pull, self.hub
        assert pull is not None
        assert entry.group_sha
        assert entry.base_sha
        with hub.store.lock(repo.full_name), hub.state.lock:
            try:
                hub.store.fast_forward(repo.full_name, base, entry.group_sha, entry.base_sha)
            except RefMoved:
                moved = True
            else:
                moved = False
                now = time.time()
                pull.merged, pull.merged_at, pull.merge_commit_sha = True, now, entry.group_sha
                pull.merged_by = entry.user
                issue.state, issue.closed_at, issue.updated_at = "closed", now, now
                issue.closed_by = entry.user
                repo.pushed_at = now
                checks = hub.state.check_states(repo, entry.group_sha)
        if moved:  # someone pushed to the base: the group no longer tests what would land
            self._destroy(entry, repo, base, "invalidated")
            entry.group_sha = entry.group_branch = entry.base_sha = None
            return
        hub.state.record(
            "merge",
            repo=repo.full_name,
            pr=issue.number,
            base=base,
            head_sha=entry.head_sha,
            merge_sha=entry.group_sha,
            method="merge",
            by=entry.user.login,
            checks=checks,
            via="merge_queue",
        )
        self._set_result(
            entry, {"status": "merged", "details": {"message": "Merged", "sha": entry.group_sha}}
        )
        hub.emit_pull(issue, "closed", entry.user)
        if base == repo.default_branch:
            hub.close_referenced(issue, entry.user)
        hub.on_branch_moved(repo, f"refs/heads/{base}", entry.base_sha, entry.group_sha, entry.user)
        self._destroy(entry, repo, base, "merged")
        self._remove(entry, "MERGE")

    def _dequeue(self, entry: Entry, reason: str) -> None:
        repo, base = entry.issue.repo, entry.issue.pull.base_ref  # type: ignore[union-attr]
        if entry.group_sha is not None:
            self._destroy(entry, repo, base, "dequeued")
        self._set_result(entry, _failed(f"Removed from the merge queue: {reason}"))
        self._remove(entry, reason)

    def _remove(self, entry: Entry, reason: str) -> None:
        issue = entry.issue
        assert issue.pull is not None
        with self._lock:
            line = self._queues.get((issue.repo.id, issue.pull.base_ref), [])
            if entry in line:
                line.remove(entry)
        self.hub.state.record(
            "dequeued",
            repo=issue.repo.full_name,
            pr=issue.number,
            reason=reason,
            head_sha=entry.head_sha,
            group_sha=entry.group_sha,
        )
        self.hub.emit_pull(issue, "dequeued", self._bot(), reason=reason)

    def _destroy(self, entry: Entry, repo: Repo, base: str, reason: str) -> None:
        """``merge_group.destroyed`` and the group's branch deleted."""
        self._emit_group(entry, repo, base, "destroyed", reason=reason)
        branch, sha = entry.group_branch, entry.group_sha
        if branch and sha and self.hub.store.delete_branch(repo.full_name, branch):
            self.hub.on_branch_moved(repo, f"refs/heads/{branch}", sha, ZERO_SHA, self._bot())

    def _emit_group(self, entry: Entry, repo: Repo, base: str, action: str, **extra: Any) -> None:
        assert entry.group_sha
        assert entry.base_sha
        body = {
            "action": action,
            **extra,
            "merge_group": {
                "head_sha": entry.group_sha,
                "head_ref": f"refs/heads/{entry.group_branch}",
                "base_sha": entry.base_sha,
                "base_ref": f"refs/heads/{base}",
                "head_commit": self.hub.simple_commit(repo, entry.group_sha),
            },
        }
        self.hub.emit(repo, "merge_group", body, self._bot())

    def _set_result(self, entry: Entry, result: dict[str, Any]) -> None:
        with self._lock:
            self._results[(entry.issue.repo.id, entry.issue.number, entry.uuid)] = result

    def _bot(self) -> User:
        state = self.hub.state
        with state.lock:
            return state.user(QUEUE_BOT) or state.add_user(QUEUE_BOT, "Bot")


_GITHUB = Identity("GitHub", "noreply@github.com")


def _failed(message: str) -> dict[str, Any]:
    return {"status": "failed", "details": {"message": message}}
