"""The behaviour behind fakehub's routes that crosses model, git, CI and webhooks.

:class:`Hub` owns the pieces (``State``, ``GitStore``, ``WebhookSender``, ``CIRunner``,
``Payloads``) and carries out what GitHub does on its own after a request or a push: webhooks to
every App installed on the repository, simulated CI on pull-request heads, merges, closing issues
by keyword, and the event log.

The class is layered over three modules: ``hub_events.py`` (:class:`~fakehub.hub_events.HubEvents`:
the pieces, ``emit`` and the ``push`` body), ``hub_checks.py``
(:class:`~fakehub.hub_checks.HubChecks`: check runs, statuses and CI) and this one (pull requests,
merges, closing issues and pushes).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from fakehub import codeowners, rulesets
from fakehub.auth import ApiError
from fakehub.ci import CIRunner
from fakehub.delivery import WebhookSender
from fakehub.gitstore import ZERO_SHA, GitStore, Identity, MergeConflict
from fakehub.hub_checks import HubChecks
from fakehub.hub_landing import merge_by_push, runs_ci_on_push
from fakehub.merge_queue import QUEUE_MESSAGE, MergeQueue
from fakehub.records import App, CheckRun, Issue, PullInfo, Repo, Status, User
from fakehub.state import State

log = logging.getLogger(__name__)

CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+(?:([\w.-]+/[\w.-]+))?#(\d+)\b",
    re.IGNORECASE,
)


class Hub(HubChecks):
    """Pull requests, merges and pushes, over :class:`~fakehub.hub_checks.HubChecks` (checks,
    statuses, CI) and :class:`~fakehub.hub_events.HubEvents` (the pieces and ``emit``); the
    merge queue is ``fakehub.merge_queue``."""

    def __init__(
        self, state: State, store: GitStore, sender: WebhookSender, ci: CIRunner, url: str
    ) -> None:
        super().__init__(state, store, sender, ci, url)
        self.queue = MergeQueue(self)

    def on_check_completed(self, run: CheckRun) -> None:
        super().on_check_completed(run)
        self.queue.on_checks(run.repo, run.head_sha)

    def add_status(self, repo: Repo, sha: str, user: User, body: dict[str, Any]) -> Status:
        status = super().add_status(repo, sha, user, body)
        if status.state != "pending":
            self.queue.on_checks(repo, sha)
        return status

    # -- pull requests ---------------------------------------------------------------------
    def merge_state(self, issue: Issue) -> tuple[bool | None, str, str | None]:
        """(mergeable, mergeable_state, why-not message for a 405) computed from real git."""
        assert issue.pull is not None
        repo, pull = issue.repo, issue.pull
        if issue.state != "open":
            return None, "unknown", "Pull Request is not mergeable"
        base = self.base_sha(issue)
        if self.store.conflicts(repo.full_name, base, pull.head_sha):
            return False, "dirty", "Pull Request is not mergeable"
        protection = repo.protection.get(pull.base_ref)
        states = self.state.check_states(repo, pull.head_sha)
        # Classic protection and rulesets add up: the most restrictive version of each applies.
        contexts = list(protection.contexts if protection else ())
        contexts += [
            c for c in rulesets.required_contexts(repo, pull.base_ref) if c not in contexts
        ]
        strict = bool(protection and protection.strict) or rulesets.strict(repo, pull.base_ref)
        if strict and not self.store.is_ancestor(repo.full_name, base, pull.head_sha):
            return True, "behind", "Head branch is out of date. Review and try the merge again."
        for context in contexts:
            state = states.get(context)
            if state is None:
                return True, "blocked", f'Required status check "{context}" is expected.'
            if state == "pending":
                return True, "blocked", f'Required status check "{context}" is in progress.'
            if state not in ("success", "neutral", "skipped"):
                return True, "blocked", f'Required status check "{context}" is failing.'
        needed = rulesets.required_approvals(repo, pull.base_ref)
        if needed and self._approvals(issue) < needed:
            return (
                True,
                "blocked",
                "At least 1 approving review is required by reviewers with write access.",
            )  # noqa: E501
        owners = self._code_owners_missing(issue, base)
        if owners:
            who = " or ".join(f"@{o}" for o in owners)
            return True, "blocked", f"Waiting on code owner review from {who}."
        if any(s in ("failure", "error", "timed_out", "cancelled") for s in states.values()):
            return True, "unstable", None
        return True, "clean", None

    def _code_owners_missing(self, issue: Issue, base: str) -> list[str]:
        """The owners of a changed file none of whom approved, when a rule on the base requires
        code owners' review (``fakehub.codeowners``); [] otherwise."""
        assert issue.pull is not None
        repo, pull = issue.repo, issue.pull
        protection = repo.protection.get(pull.base_ref)
        classic = bool(protection and protection.code_owner_reviews)
        if not classic and not rulesets.code_owner_review(repo, pull.base_ref):
            return []
        for location in codeowners.LOCATIONS:
            raw = self.store.read_file(repo.full_name, base, location)
            if raw is not None:
                paths = [
                    f["filename"]
                    for f in self.store.changed_files(repo.full_name, base, pull.head_sha)
                ]
                return codeowners.unapproved(
                    raw.decode(errors="replace"), paths, self._approvers(issue)
                )
        return []

    def _approvals(self, issue: Issue) -> int:
        return len(self._approvers(issue))

    def _approvers(self, issue: Issue) -> set[str]:
        """People with write access whose latest verdict approves (an App's never counts)."""
        verdicts: dict[str, tuple[User, str]] = {}
        for review in self.state.reviews_for(issue):
            if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                verdicts[review.user.login.lower()] = (review.user, review.state)
        return {
            login
            for login, (user, state) in verdicts.items()
            if state == "APPROVED"
            and user.type == "User"
            and self.state.permission(issue.repo, user) in ("write", "maintain", "admin")
        }

    def pull_json(self, issue: Issue, *, stats: bool = True) -> dict[str, Any]:
        assert issue.pull is not None
        mergeable, mstate, _ = self.merge_state(issue)
        base = self.base_sha(issue)
        return self.payloads.pull(
            issue,
            base_sha=base,
            mergeable=mergeable,
            mergeable_state=mstate,
            stats=self.diff_stats(issue, base) if stats else None,
        )

    def diff_stats(self, issue: Issue, base: str) -> dict[str, int]:
        assert issue.pull is not None
        full = issue.repo.full_name
        head = issue.pull.head_sha
        files = self.store.changed_files(full, base, head)
        return {
            "commits": self.store.count_commits(full, base, head),
            "additions": sum(f["additions"] for f in files),
            "deletions": sum(f["deletions"] for f in files),
            "changed_files": len(files),
        }

    def emit_pull(self, issue: Issue, action: str, sender: User, **extra: Any) -> None:
        body = {"action": action, "number": issue.number, **extra}
        body["pull_request"] = self.pull_json(issue)
        self.emit(issue.repo, "pull_request", body, sender)

    def open_pull(
        self,
        repo: Repo,
        user: User,
        app: App | None,
        *,
        title: str,
        head: str,
        base: str,
        body: str | None,
        draft: bool,
    ) -> Issue:
        head_sha = self.store.ref_sha(repo.full_name, head)
        base_sha = self.store.ref_sha(repo.full_name, base)
        if head_sha is None or base_sha is None:
            field = "head" if head_sha is None else "base"
            raise ApiError(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": field, "code": "invalid"}],
            )
        if self.state.open_pull_for_head(repo, head) is not None:
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner.login}:{head}.",
                    }
                ],
            )
        if self.store.is_ancestor(repo.full_name, head_sha, base_sha):
            raise ApiError(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {base} and {head}",
                    }
                ],
            )
        issue = self.state.add_issue(
            repo, title, body, user, app=app, pull=PullInfo(head, base, head_sha, draft=draft)
        )
        self.state.record(
            "pr_opened", repo=repo.full_name, pr=issue.number, head=head, base=base, by=user.login
        )
        self.emit_pull(issue, "opened", user)
        self.run_ci(repo, head_sha, head)
        return issue

    def set_pull_state(self, issue: Issue, state: str, user: User) -> None:
        if state == issue.state:
            return
        issue.state = state
        issue.updated_at = time.time()
        if state == "closed":
            issue.closed_at = issue.updated_at
            issue.closed_by = user
            self.emit_pull(issue, "closed", user)
        else:
            issue.closed_at = None
            issue.closed_by = None
            self.emit_pull(issue, "reopened", user)

    def merge(
        self,
        issue: Issue,
        user: User,
        *,
        sha: str | None,
        method: str,
        title: str | None,
        message: str | None,
    ) -> str:
        assert issue.pull is not None
        repo, pull = issue.repo, issue.pull
        if method not in ("merge", "squash", "rebase"):
            raise ApiError(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}],
            )
        with self.store.lock(repo.full_name), self.state.lock:
            if issue.state != "open":
                self._refuse(issue, 405, "Pull Request is not mergeable")
            if self.queue.requires(repo, pull.base_ref):
                self._refuse(issue, 405, QUEUE_MESSAGE)
            if sha and sha != pull.head_sha:
                self._refuse(
                    issue, 409, "Head branch was modified. Review and try the merge again."
                )
            _, mstate, why = self.merge_state(issue)
            if mstate in ("dirty", "behind", "blocked"):
                self._refuse(issue, 405, why or "Pull Request is not mergeable")
            before = self.base_sha(issue)
            if method == "merge":
                default_title = (
                    f"Merge pull request #{issue.number} from {repo.owner.login}/{pull.head_ref}"
                )
                default_message = issue.title
            else:
                default_title = f"{issue.title} (#{issue.number})"
                default_message = ""
            author = self.identity(issue.user) if method == "squash" else None
            try:
                new = self.store.merge(
                    repo.full_name,
                    pull.base_ref,
                    pull.head_sha,
                    method=method,  # type: ignore[arg-type]
                    title=title or default_title,
                    message=message if message is not None else default_message,
                    committer=Identity("GitHub", "noreply@github.com"),
                    author=author,
                )
            except MergeConflict:
                self._refuse(issue, 405, "Pull Request is not mergeable")
            now = time.time()
            pull.merged, pull.merged_at, pull.merge_commit_sha = True, now, new
            pull.merged_by = user
            issue.state, issue.closed_at, issue.updated_at, issue.closed_by = (
                "closed",
                now,
                now,
                user,
            )
            repo.pushed_at = now
            checks = self.state.check_states(repo, pull.head_sha)
        self.state.record(
            "merge",
            repo=repo.full_name,
            pr=issue.number,
            base=pull.base_ref,
            head_sha=pull.head_sha,
            merge_sha=new,
            method=method,
            by=user.login,
            checks=checks,
        )
        self.emit_pull(issue, "closed", user)
        if pull.base_ref == repo.default_branch:
            self.close_referenced(issue, user)
        self.on_branch_moved(repo, f"refs/heads/{pull.base_ref}", before, new, user)
        return new

    def _refuse(self, issue: Issue, status: int, message: str) -> None:
        self.state.record(
            "merge_refused",
            repo=issue.repo.full_name,
            pr=issue.number,
            status=status,
            message=message,
        )
        raise ApiError(status, message)

    def close_referenced(self, pr: Issue, user: User) -> None:
        for match in CLOSING.finditer(pr.body or ""):
            full, number = match.group(1), int(match.group(2))
            repo = self.state.repo(full) if full else pr.repo
            target = self.state.issue(repo, number) if repo else None
            if target is None or target.pull is not None or target.state != "open":
                continue
            self.close_issue(target, user, "completed")

    def close_issue(self, issue: Issue, user: User, reason: str | None) -> None:
        now = time.time()
        issue.state, issue.state_reason = "closed", reason or "completed"
        issue.closed_at, issue.closed_by, issue.updated_at = now, user, now
        self.state.record(
            "issue_closed", repo=issue.repo.full_name, issue=issue.number, reason=issue.state_reason
        )
        self.emit(
            issue.repo, "issues", {"action": "closed", "issue": self.payloads.issue(issue)}, user
        )

    def update_branch(self, issue: Issue, user: User, expected: str | None) -> str:
        assert issue.pull is not None
        repo, pull = issue.repo, issue.pull
        if expected and expected != pull.head_sha:
            raise ApiError(422, "expected_head_sha must match the pull request's head sha")
        before = pull.head_sha
        try:
            new = self.store.update_branch(
                repo.full_name, pull.head_ref, pull.base_ref, committer=self.identity(user)
            )
        except MergeConflict:
            raise ApiError(422, "merge conflict between base and head") from None
        if new != before:
            self.state.record("branch_updated", repo=repo.full_name, pr=issue.number, head_sha=new)
            self.on_branch_moved(repo, f"refs/heads/{pull.head_ref}", before, new, user)
        return new

    # -- pushes ----------------------------------------------------------------------------
    def on_branch_moved(self, repo: Repo, ref: str, before: str, after: str, user: User) -> None:
        """What GitHub does after any ref update: log, ``push`` webhook, PR sync and CI."""
        self.state.record(
            "push", repo=repo.full_name, ref=ref, before=before, after=after, by=user.login
        )
        repo.pushed_at = time.time()
        self.emit(repo, "push", self.push_body(repo, ref, before, after, user), user)
        branch = ref.removeprefix("refs/heads/")
        if after == ZERO_SHA:
            self.retarget_dependents(repo, branch, before, user)
            return
        merge_by_push(self, repo, branch, before, after, user)
        pr = self.state.open_pull_for_head(repo, branch)
        if pr is not None and pr.pull is not None and pr.pull.head_sha != after:
            old = pr.pull.head_sha
            pr.pull.head_sha = after
            pr.updated_at = time.time()
            self.emit_pull(pr, "synchronize", user, before=old, after=after)
            self.run_ci(repo, after, branch)
            self.queue.on_head_moved(pr)
        elif pr is None and runs_ci_on_push(repo, branch):
            self.run_ci(repo, after, branch)

    def retarget_dependents(self, repo: Repo, branch: str, before: str, user: User) -> None:
        """GitHub, when a branch is deleted: open pull requests based on it move to the base of
        the merged pull request whose head it was ("automatic retargeting"); with no such
        merge they are closed."""
        merged = [
            i
            for i in repo.issues.values()
            if i.pull is not None and i.pull.merged and i.pull.head_ref == branch
        ]
        for issue in self.state.open_pulls(repo):
            assert issue.pull is not None
            if issue.pull.base_ref != branch:
                continue
            if not merged:
                self.set_pull_state(issue, "closed", user)
                continue
            base = merged[-1].pull.base_ref if merged[-1].pull else repo.default_branch
            changes = {"base": {"ref": {"from": branch}, "sha": {"from": before}}}
            issue.pull.base_ref = base
            issue.updated_at = time.time()
            self.emit_pull(issue, "edited", user, changes=changes)

    def on_git_push(
        self, full_name: str, updates: list[tuple[str, str, str]], password: str | None
    ) -> None:
        """``githttp`` callback: a push over smart HTTP landed."""
        repo = self.state.repo(full_name)
        if repo is None:
            return
        user = self._pusher(password) or repo.owner
        for ref, before, after in updates:
            try:
                self.on_branch_moved(repo, ref, before, after, user)
            except Exception:
                log.exception("push handling failed for %s %s", full_name, ref)

    def _pusher(self, password: str | None) -> User | None:
        if not password:
            return None
        tok = self.state.tokens.get(password)
        if tok is not None:
            return tok.installation.app.bot
        return self.state.user_by_token(password)
