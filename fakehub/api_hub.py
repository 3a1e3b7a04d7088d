"""The behaviour behind fakehub's routes that crosses model, git, CI and webhooks.

:class:`Hub` owns the pieces (``State``, ``GitStore``, ``WebhookSender``, ``CIRunner``,
``Payloads``) and carries out what GitHub does on its own after a request or a push: webhooks to
every App installed on the repository, simulated CI on pull-request heads, merges, closing issues
by keyword, and the event log.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from typing import Any

from fakehub.auth import ApiError
from fakehub.ci import CIResult, CIRunner
from fakehub.delivery import WebhookSender
from fakehub.gitstore import ZERO_SHA, GitStore, Identity, MergeConflict, git_env
from fakehub.payloads import Payloads
from fakehub.state import App, CheckRun, Issue, PullInfo, Repo, State, Status, User, iso

log = logging.getLogger(__name__)

ALWAYS_SENT = {"installation", "installation_repositories"}
CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+(?:([\w.-]+/[\w.-]+))?#(\d+)\b",
    re.IGNORECASE,
)
OUTPUT_TAIL = 60_000


class Hub:
    def __init__(
        self, state: State, store: GitStore, sender: WebhookSender, ci: CIRunner, url: str
    ) -> None:
        self.state = state
        self.store = store
        self.sender = sender
        self.ci = ci
        self.payloads = Payloads(state, url)
        self._ci_app: App | None = None

    @property
    def url(self) -> str:
        return self.payloads.url

    def set_url(self, url: str) -> None:
        self.payloads = Payloads(self.state, url)

    # -- webhooks --------------------------------------------------------------------------
    def emit(self, repo: Repo, event: str, body: dict[str, Any], sender: User) -> None:
        """Deliver ``event`` to every App installed on ``repo`` that subscribes to it."""
        p = self.payloads
        for inst in self.state.installations_for(repo):
            app = inst.app
            if not app.webhook_url or (event not in inst.events and event not in ALWAYS_SENT):
                continue
            payload = dict(body)
            payload["repository"] = p.repo(repo)
            if repo.owner.type == "Organization":
                payload["organization"] = p.organization(repo.owner)
            payload["sender"] = p.user(sender)
            payload["installation"] = p.installation_ref(inst)
            self.sender.send(app.webhook_url, app.webhook_secret, event, payload)

    def emit_installation(self, inst_id: int, sender: User) -> None:
        inst = self.state.installations[inst_id]
        app = inst.app
        if not app.webhook_url:
            return
        repos = [self.state.repo_by_id(i) for i in inst.repository_ids]
        payload: dict[str, Any] = {
            "action": "created",
            "installation": self.payloads.installation(inst),
            "repositories": [
                {
                    "id": r.id,
                    "node_id": self.payloads.repo(r)["node_id"],
                    "name": r.name,
                    "full_name": r.full_name,
                    "private": r.private,
                }
                for r in repos
                if r is not None
            ],
            "requester": None,
            "sender": self.payloads.user(sender),
        }
        if inst.account.type == "Organization":
            payload["organization"] = self.payloads.organization(inst.account)
        self.sender.send(app.webhook_url, app.webhook_secret, "installation", payload)

    def identity(self, user: User) -> Identity:
        return Identity(user.name or user.login, user.email)

    # -- pull requests ---------------------------------------------------------------------
    def base_sha(self, issue: Issue) -> str:
        assert issue.pull is not None
        sha = self.store.ref_sha(issue.repo.full_name, issue.pull.base_ref)
        return sha or issue.pull.head_sha

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
        if (
            protection
            and protection.strict
            and not self.store.is_ancestor(repo.full_name, base, pull.head_sha)
        ):
            return True, "behind", "Head branch is out of date. Review and try the merge again."
        for context in protection.contexts if protection else []:
            state = states.get(context)
            if state is None:
                return True, "blocked", f'Required status check "{context}" is expected.'
            if state == "pending":
                return True, "blocked", f'Required status check "{context}" is in progress.'
            if state not in ("success", "neutral", "skipped"):
                return True, "blocked", f'Required status check "{context}" is failing.'
        if any(s in ("failure", "error", "timed_out", "cancelled") for s in states.values()):
            return True, "unstable", None
        return True, "clean", None

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
        count = subprocess.run(
            ["git", "rev-list", "--count", head, f"^{base}"],
            cwd=self.store.path(full),
            env=git_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return {
            "commits": int(count.stdout.strip() or 0),
            "additions": sum(f["additions"] for f in files),
            "deletions": sum(f["deletions"] for f in files),
            "changed_files": len(files),
        }

    def pulls_for_sha(self, repo: Repo, sha: str) -> list[dict[str, Any]]:
        return [
            self.payloads.pull_minimal(i, self.base_sha(i))
            for i in self.state.open_pulls(repo)
            if i.pull and i.pull.head_sha == sha
        ]

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
            return
        pr = self.state.open_pull_for_head(repo, branch)
        if pr is not None and pr.pull is not None and pr.pull.head_sha != after:
            old = pr.pull.head_sha
            pr.pull.head_sha = after
            pr.updated_at = time.time()
            self.emit_pull(pr, "synchronize", user, before=old, after=after)
            self.run_ci(repo, after, branch)

    def push_body(
        self, repo: Repo, ref: str, before: str, after: str, user: User
    ) -> dict[str, Any]:
        full = repo.full_name
        commits: list[dict[str, Any]] = []
        if after != ZERO_SHA:
            args = ["git", "rev-list", "--reverse", "--max-count=20", after]
            if before != ZERO_SHA:
                args.append(f"^{before}")
            out = subprocess.run(
                args,
                cwd=self.store.path(full),
                env=git_env(),
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            commits = [self.commit_json(repo, sha) for sha in out]
        head = self.commit_json(repo, after) if after != ZERO_SHA else None
        return {
            "ref": ref,
            "before": before,
            "after": after,
            "created": before == ZERO_SHA,
            "deleted": after == ZERO_SHA,
            "forced": before != ZERO_SHA
            and after != ZERO_SHA
            and not self.store.is_ancestor(full, before, after),
            "base_ref": None,
            "compare": f"{self.url}/{full}/compare/{before[:12]}...{after[:12]}",
            "commits": commits,
            "head_commit": head,
            "pusher": {"name": user.login, "email": user.email},
        }

    def commit_json(self, repo: Repo, sha: str) -> dict[str, Any]:
        info = self.store.commit_info(repo.full_name, sha)
        return {
            "id": info.sha,
            "tree_id": info.tree,
            "distinct": True,
            "message": info.message,
            "timestamp": info.committer_date,
            "url": f"{self.url}/{repo.full_name}/commit/{info.sha}",
            "author": {"name": info.author_name, "email": info.author_email},
            "committer": {"name": info.committer_name, "email": info.committer_email},
            "added": [],
            "removed": [],
            "modified": [],
        }

    def simple_commit(self, repo: Repo, sha: str) -> dict[str, Any]:
        full = self.commit_json(repo, sha)
        return {
            k: full[k] for k in ("id", "tree_id", "message", "timestamp", "author", "committer")
        }

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

    # -- checks and CI ---------------------------------------------------------------------
    @property
    def ci_app(self) -> App:
        with self.state.lock:
            if self._ci_app is None:
                owner = self.state.user("fakehub") or self.state.add_user("fakehub", "Organization")
                self._ci_app = self.state.add_app(
                    slug="fakehub-ci",
                    owner=owner,
                    webhook_url=None,
                    webhook_secret="",
                    events=[],
                    permissions={"checks": "write", "contents": "read"},
                    name="fakehub CI",
                )
            return self._ci_app

    def create_check_run(
        self,
        repo: Repo,
        app: App,
        *,
        name: str,
        head_sha: str,
        status: str = "queued",
        conclusion: str | None = None,
        output: dict[str, Any] | None = None,
        details_url: str | None = None,
        external_id: str | None = None,
    ) -> CheckRun:
        branch = next(
            (b for b, s in self.store.branches(repo.full_name).items() if s == head_sha), None
        )
        with self.state.lock:
            suite = self.state.suite_for(repo, app, head_sha, branch)
            run = CheckRun(
                self.state.next_id(),
                repo,
                suite,
                name,
                head_sha,
                status=status,
                output=dict(output or {}),
                details_url=details_url,
                external_id=external_id,
            )
            self.state.check_runs[run.id] = run
        if conclusion is not None:
            run.status, run.conclusion, run.completed_at = "completed", conclusion, time.time()
        self.emit_check_run(run, "created")
        if run.status == "completed":
            self.on_check_completed(run)
        return run

    def update_check_run(self, run: CheckRun, changes: dict[str, Any]) -> None:
        was_done = run.status == "completed"
        for key in ("name", "details_url", "external_id"):
            if key in changes:
                setattr(run, key, changes[key])
        if "output" in changes and isinstance(changes["output"], dict):
            run.output.update(changes["output"])
        if "status" in changes:
            run.status = changes["status"]
        if changes.get("conclusion"):
            run.status, run.conclusion = "completed", changes["conclusion"]
        if run.status == "completed" and run.completed_at is None:
            run.completed_at = time.time()
            run.conclusion = run.conclusion or "success"
        run.suite.updated_at = time.time()
        if run.status == "completed" and not was_done:
            self.on_check_completed(run)

    def emit_check_run(self, run: CheckRun, action: str) -> None:
        body = {
            "action": action,
            "check_run": self.payloads.check_run(
                run, pulls=self.pulls_for_sha(run.repo, run.head_sha)
            ),
        }
        self.emit(run.repo, "check_run", body, run.app.bot)

    def on_check_completed(self, run: CheckRun) -> None:
        repo = run.repo
        self.state.record(
            "check_completed",
            repo=repo.full_name,
            sha=run.head_sha,
            name=run.name,
            conclusion=run.conclusion,
        )
        self.emit_check_run(run, "completed")
        siblings = [r for r in self.state.check_runs.values() if r.suite is run.suite]
        if all(r.status == "completed" for r in siblings):
            suite = self.payloads.check_suite(
                run.suite,
                pulls=self.pulls_for_sha(repo, run.head_sha),
                head_commit=self.simple_commit(repo, run.head_sha),
                with_repo=False,
            )
            self.emit(
                repo, "check_suite", {"action": "completed", "check_suite": suite}, run.app.bot
            )

    def run_ci(self, repo: Repo, sha: str, branch: str | None) -> None:
        if not repo.ci_command:
            return
        app = self.ci_app
        run = self.create_check_run(
            repo, app, name="ci", head_sha=sha, output={"title": "ci", "summary": "Queued"}
        )

        def done(result: CIResult) -> None:
            tail = result.output[-OUTPUT_TAIL:]
            title = "CI passed" if result.conclusion == "success" else "CI failed"
            self.update_check_run(
                run,
                {
                    "status": "completed",
                    "conclusion": result.conclusion,
                    "output": {
                        "title": title,
                        "summary": f"{title} in {result.seconds:.1f}s",
                        "text": f"```\n{tail}\n```",
                    },
                },
            )

        run.status = "in_progress"
        run.started_at = time.time()
        self.ci.submit(repo.full_name, sha, list(repo.ci_command), done)

    def add_status(self, repo: Repo, sha: str, user: User, body: dict[str, Any]) -> Status:
        with self.state.lock:
            status = Status(
                self.state.next_id(),
                repo,
                sha,
                body["state"],
                body.get("context") or "default",
                user,
                description=body.get("description"),
                target_url=body.get("target_url"),
            )
            self.state.statuses.append(status)
        self.emit(repo, "status", self.status_body(status), user)
        return status

    def status_body(self, s: Status) -> dict[str, Any]:
        info = self.store.commit_info(s.repo.full_name, s.sha)
        api = f"{self.payloads.api}/repos/{s.repo.full_name}"
        person = {"name": info.author_name, "email": info.author_email, "date": info.author_date}
        committer = {
            "name": info.committer_name,
            "email": info.committer_email,
            "date": info.committer_date,
        }
        branches = [
            {
                "name": b,
                "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
                "protected": b in s.repo.protection,
            }
            for b, sha in self.store.branches(s.repo.full_name).items()
            if sha == s.sha
        ]
        return {
            "id": s.id,
            "sha": s.sha,
            "name": s.repo.full_name,
            "target_url": s.target_url,
            "avatar_url": f"{self.url}/avatars/u/{s.creator.id}",
            "context": s.context,
            "description": s.description,
            "state": s.state,
            "commit": {
                "sha": s.sha,
                "node_id": f"C_{s.sha[:20]}",
                "commit": {
                    "author": person,
                    "committer": committer,
                    "message": info.message,
                    "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
                    "url": f"{api}/git/commits/{s.sha}",
                    "comment_count": 0,
                    "verification": {
                        "verified": False,
                        "reason": "unsigned",
                        "signature": None,
                        "payload": None,
                        "verified_at": None,
                    },
                },
                "url": f"{api}/commits/{s.sha}",
                "html_url": f"{self.url}/{s.repo.full_name}/commit/{s.sha}",
                "comments_url": f"{api}/commits/{s.sha}/comments",
                "author": None,
                "committer": None,
                "parents": [
                    {
                        "sha": p,
                        "url": f"{api}/commits/{p}",
                        "html_url": f"{self.url}/{s.repo.full_name}/commit/{p}",
                    }
                    for p in info.parents
                ],
            },
            "branches": branches,
            "created_at": iso(s.created_at),
            "updated_at": iso(s.updated_at),
        }
