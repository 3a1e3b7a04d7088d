"""The Hub's checks, statuses and simulated CI.

:class:`HubChecks` creates and updates check runs and commit statuses and sends their webhooks
(``check_run``, ``check_suite`` once every run of a suite is done, ``status``), and runs a
repository's CI command on a pull request's head as the ``fakehub CI`` App.
"""

from __future__ import annotations

import time
from typing import Any

from fakehub.ci import CIResult, CIRunner
from fakehub.delivery import WebhookSender
from fakehub.gitstore import GitStore
from fakehub.hub_events import HubEvents
from fakehub.records import App, CheckRun, Issue, Repo, Status, User, iso
from fakehub.state import State

OUTPUT_TAIL = 60_000


class HubChecks(HubEvents):
    """Check runs, statuses and CI over :class:`~fakehub.hub_events.HubEvents`."""

    def __init__(
        self, state: State, store: GitStore, sender: WebhookSender, ci: CIRunner, url: str
    ) -> None:
        super().__init__(state, store, sender, url)
        self.ci = ci
        self._ci_app: App | None = None

    # -- the pull requests a check belongs to ----------------------------------------------
    def base_sha(self, issue: Issue) -> str:
        assert issue.pull is not None
        sha = self.store.ref_sha(issue.repo.full_name, issue.pull.base_ref)
        return sha or issue.pull.head_sha

    def pulls_for_sha(self, repo: Repo, sha: str) -> list[dict[str, Any]]:
        return [
            self.payloads.pull_minimal(i, self.base_sha(i))
            for i in self.state.open_pulls(repo)
            if i.pull and i.pull.head_sha == sha
        ]

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
        if repo.ci_reports == "status":
            self._run_ci_status(repo, sha, app)
            return
        run = self.create_check_run(
            repo, app, name="ci", head_sha=sha, output={"title": "ci", "summary": "Queued"}
        )
        self._ci_into(run)

    def rerun_actions_job(self, run: CheckRun, run_id: int) -> CheckRun:
        """A failed GitHub Actions job of workflow run ``run_id`` run again
        (``rerun-failed-jobs``): a new check run of the same name on the same head, by the same
        App, completed by the repository's CI command when it has one (else left queued for a
        test playing the Actions runner)."""
        new = self.create_check_run(run.repo, run.app, name=run.name, head_sha=run.head_sha)
        base = f"{self.url}/{run.repo.full_name}/actions/runs/{run_id}"
        new.details_url = f"{base}/job/{new.id}"
        if run.repo.ci_command:
            self._ci_into(new)
        return new

    def _ci_into(self, run: CheckRun) -> None:
        """Run the repository's CI command on ``run``'s head; its result completes ``run``."""
        repo, sha = run.repo, run.head_sha
        assert repo.ci_command is not None

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

    def _run_ci_status(self, repo: Repo, sha: str, app: App) -> None:
        """CI that reports a ``ci`` commit status: pending, then success or failure."""
        self.add_status(repo, sha, app.bot, {"state": "pending", "context": "ci"})

        def done(result: CIResult) -> None:
            state = "success" if result.conclusion == "success" else "failure"
            words = f"CI {'passed' if state == 'success' else 'failed'} in {result.seconds:.1f}s"
            self.add_status(
                repo, sha, app.bot, {"state": state, "context": "ci", "description": words}
            )
            self.state.record(
                "check_completed",
                repo=repo.full_name,
                sha=sha,
                name="ci",
                conclusion=state,
                seconds=result.seconds,
            )

        assert repo.ci_command is not None
        self.ci.submit(repo.full_name, sha, list(repo.ci_command), done)

    def rerequest_check_run(self, run: CheckRun, app: App) -> None:
        """``POST .../check-runs/{id}/rerequest`` by ``app``: a run of fakehub's CI is run
        again (a new run of the same name on the same head, with its webhooks, as a CI App
        does on ``check_run.rerequested``); the owner of any other run is sent
        ``check_run.rerequested`` and re-runs it itself. Callers check who may ask."""
        self.state.record(
            "check_rerequested",
            repo=run.repo.full_name,
            sha=run.head_sha,
            name=run.name,
            id=run.id,
            by=app.slug,
        )
        if run.app is self._ci_app and run.repo.ci_command:
            self.run_ci(run.repo, run.head_sha, run.suite.head_branch)
        else:
            self.emit_check_run(run, "rerequested")

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
