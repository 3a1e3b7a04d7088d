"""GitHub's JSON shapes for fakehub's model objects, shared by REST responses and webhooks.

Each function returns the richest shape GitHub sends for that object, so one dict satisfies both
the REST schema (``issue``, ``pull-request``, ``full-repository``…) and the webhook schema of the
same object. Keys GitHub omits are omitted, never sent as null. ``tests/fakehub/test_fidelity.py``
validates every shape against GitHub's OpenAPI descriptions.

This module holds the pull request, review, check and status shapes; the account, repository,
issue and comment shapes it builds on are in ``fakehub/payloads_issues.py``.
"""

from __future__ import annotations

from typing import Any

from fakehub.payloads_issues import REACTIONS as REACTIONS  # re-exported: it lived here
from fakehub.payloads_issues import IssuePayloads
from fakehub.records import (
    CheckRun,
    CheckSuite,
    Issue,
    Repo,
    Review,
    ReviewComment,
    Status,
    iso,
    node_id,
)

WEBHOOK_APP_EVENTS = frozenset(
    "branch_protection_rule check_run check_suite code_scanning_alert commit_comment create "
    "delete deployment deployment_review deployment_status deploy_key discussion "
    "discussion_comment fork gollum issues issue_comment label member membership milestone "
    "organization org_block page_build project project_card project_column public pull_request "
    "pull_request_review pull_request_review_comment push registry_package release repository "
    "repository_dispatch secret_scanning_alert star status team team_add watch workflow_dispatch "
    "workflow_run merge_group pull_request_review_thread workflow_job".split()
)


class Payloads(IssuePayloads):
    """:class:`~fakehub.payloads_issues.IssuePayloads` plus pull requests, reviews, checks and
    statuses: the one builder the Hub and the routes use."""

    # -- pull requests ---------------------------------------------------------------------
    def pull_ref(self, r: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{r.owner.login}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(r.owner),
            "repo": self.repo(r, full=True),
        }

    def pull(
        self,
        i: Issue,
        *,
        base_sha: str,
        mergeable: bool | None,
        mergeable_state: str,
        stats: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """A ``pull-request`` object; ``stats`` holds commits/additions/deletions/changed_files."""
        assert i.pull is not None
        r, p = i.repo, i.pull
        api = f"{self.api}/repos/{r.full_name}/pulls/{i.number}"
        html = f"{self.url}/{r.full_name}/pull/{i.number}"
        issue_api = f"{self.api}/repos/{r.full_name}/issues/{i.number}"
        stats = stats or {}
        return {
            "url": api,
            "id": i.id,
            "node_id": i.node_id,
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_api,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": f"{self.api}/repos/{r.full_name}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": f"{self.api}/repos/{r.full_name}/statuses/{p.head_sha}",
            "number": i.number,
            "state": i.state,
            "locked": False,
            "title": i.title,
            "user": self.user(i.user),
            "body": i.body,
            "labels": [self.label(r, lbl) for lbl in i.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(i.created_at),
            "updated_at": iso(i.updated_at),
            "closed_at": iso(i.closed_at) if i.closed_at else None,
            "merged_at": iso(p.merged_at) if p.merged_at else None,
            "merge_commit_sha": p.merge_commit_sha,
            "assignee": self.user(i.assignees[0]) if i.assignees else None,
            "assignees": [self.user(a) for a in i.assignees],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self.pull_ref(r, p.head_ref, p.head_sha),
            "base": self.pull_ref(r, p.base_ref, base_sha),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": f"{issue_api}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {
                    "href": f"{self.api}/repos/{r.full_name}/pulls/comments{{/number}}"
                },
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": f"{self.api}/repos/{r.full_name}/statuses/{p.head_sha}"},
            },
            "author_association": self.association(r, i.user),
            "auto_merge": None,
            "draft": p.draft,
            "merged": p.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": mergeable_state,
            "merged_by": self.user(p.merged_by) if p.merged_by else None,
            "comments": i.comments,
            "review_comments": len(self.state.review_comments_for(i)),
            "maintainer_can_modify": False,
            "commits": stats.get("commits", 0),
            "additions": stats.get("additions", 0),
            "deletions": stats.get("deletions", 0),
            "changed_files": stats.get("changed_files", 0),
        }

    # -- reviews ---------------------------------------------------------------------------
    def review(self, r: Review, *, webhook: bool = False) -> dict[str, Any]:
        """A ``pull-request-review``; ``webhook`` gives the ``review`` object of the
        ``pull_request_review`` event, whose ``state`` GitHub spells in lower case."""
        repo, number = r.pull.repo, r.pull.number
        html = f"{self.url}/{repo.full_name}/pull/{number}#pullrequestreview-{r.id}"
        pull_api = f"{self.api}/repos/{repo.full_name}/pulls/{number}"
        body: dict[str, Any] = {
            "id": r.id,
            "node_id": node_id("PRR", r.id),
            "user": self.user(r.user),
            "body": r.body,
            "state": r.state.lower() if webhook else r.state,
            "html_url": html,
            "pull_request_url": pull_api,
            "author_association": self.association(repo, r.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_api}},
            "submitted_at": iso(r.submitted_at),
            "commit_id": r.commit_id,
        }
        if webhook:
            body["updated_at"] = iso(r.updated_at)
        return body

    def review_comment(self, c: ReviewComment) -> dict[str, Any]:
        """A ``pull-request-review-comment`` (``GET /pulls/{n}/comments``)."""
        repo, number = c.pull.repo, c.pull.number
        api = f"{self.api}/repos/{repo.full_name}/pulls/comments/{c.id}"
        html = f"{self.url}/{repo.full_name}/pull/{number}#discussion_r{c.id}"
        pull_api = f"{self.api}/repos/{repo.full_name}/pulls/{number}"
        anchor = c.line if c.line is not None else c.position
        body: dict[str, Any] = {
            "url": api,
            "pull_request_review_id": c.review.id,
            "id": c.id,
            "node_id": node_id("PRRC", c.id),
            "diff_hunk": f"@@ -0,0 +{anchor or 1} @@",
            "path": c.path,
            "commit_id": c.commit_id,
            "original_commit_id": c.commit_id,
            "user": self.user(c.user),
            "body": c.body,
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
            "html_url": html,
            "pull_request_url": pull_api,
            "author_association": self.association(repo, c.user),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "pull_request": {"href": pull_api},
            },
            "start_line": None,
            "original_start_line": None,
            "start_side": None,
            "side": "RIGHT",
            "subject_type": "line",
            "reactions": self.reactions(api, []),
        }
        # fakehub does not map file lines to diff positions: a comment carries the anchor it
        # was made with (GitHub omits either key when it cannot place the comment, too).
        if c.line is not None:
            body["line"] = body["original_line"] = c.line
        if c.position is not None:
            body["position"] = body["original_position"] = c.position
        return body

    def pull_minimal(self, i: Issue, base_sha: str) -> dict[str, Any]:
        """The short form inside ``check_run.pull_requests`` / ``check_suite.pull_requests``."""
        assert i.pull is not None
        r = i.repo
        repo_ref = {"id": r.id, "url": f"{self.api}/repos/{r.full_name}", "name": r.name}
        return {
            "id": i.id,
            "number": i.number,
            "url": f"{self.api}/repos/{r.full_name}/pulls/{i.number}",
            "head": {"ref": i.pull.head_ref, "sha": i.pull.head_sha, "repo": repo_ref},
            "base": {"ref": i.pull.base_ref, "sha": base_sha, "repo": repo_ref},
        }

    # -- checks and statuses ---------------------------------------------------------------
    def check_suite(
        self,
        s: CheckSuite,
        *,
        pulls: list[dict[str, Any]],
        head_commit: dict[str, Any],
        with_repo: bool = True,
    ) -> dict[str, Any]:
        runs = [c for c in self.state.check_runs.values() if c.suite is s]
        done = bool(runs) and all(c.status == "completed" for c in runs)
        status = "completed" if done else ("in_progress" if runs else "queued")
        conclusion = _suite_conclusion([c.conclusion for c in runs]) if done else None
        api = f"{self.api}/repos/{s.repo.full_name}"
        body: dict[str, Any] = {
            "id": s.id,
            "node_id": node_id("CS", s.id),
            "head_branch": s.head_branch,
            "head_sha": s.head_sha,
            "status": status,
            "conclusion": conclusion,
            "url": f"{api}/check-suites/{s.id}",
            "before": None,
            "after": s.head_sha,
            "pull_requests": pulls,
            "app": self.app(s.app),
            "created_at": iso(s.created_at),
            "updated_at": iso(s.updated_at),
            "rerequestable": True,
            "runs_rerequestable": True,
            "latest_check_runs_count": len(runs),
            "check_runs_url": f"{api}/check-suites/{s.id}/check-runs",
            "head_commit": head_commit,
        }
        # The webhooks description enumerates App events and lacks the newer issue ones.
        body["app"]["events"] = [e for e in s.app.events if e in WEBHOOK_APP_EVENTS]
        if with_repo:
            body["repository"] = self.repo(s.repo)
        return body

    def check_run(self, c: CheckRun, *, pulls: list[dict[str, Any]]) -> dict[str, Any]:
        api = f"{self.api}/repos/{c.repo.full_name}"
        out = c.output
        return {
            "id": c.id,
            "node_id": node_id("CR", c.id),
            "head_sha": c.head_sha,
            "external_id": c.external_id or "",
            "url": f"{api}/check-runs/{c.id}",
            "html_url": f"{self.url}/{c.repo.full_name}/runs/{c.id}",
            "details_url": c.details_url or f"{self.url}/{c.repo.full_name}/runs/{c.id}",
            "status": c.status,
            "conclusion": c.conclusion,
            "started_at": iso(c.started_at),
            "completed_at": iso(c.completed_at) if c.completed_at else None,
            "output": {
                "title": out.get("title"),
                "summary": out.get("summary"),
                "text": out.get("text"),
                "annotations_count": 0,
                "annotations_url": f"{api}/check-runs/{c.id}/annotations",
            },
            "name": c.name,
            "check_suite": {"id": c.suite.id},
            "app": self.app(c.app),
            "pull_requests": pulls,
        }

    def status(self, s: Status) -> dict[str, Any]:
        return {
            "url": f"{self.api}/repos/{s.repo.full_name}/statuses/{s.sha}",
            "avatar_url": f"{self.url}/avatars/u/{s.creator.id}",
            "id": s.id,
            "node_id": node_id("SC", s.id),
            "state": s.state,
            "description": s.description,
            "target_url": s.target_url,
            "context": s.context,
            "created_at": iso(s.created_at),
            "updated_at": iso(s.updated_at),
            "creator": self.user(s.creator),
        }


def _suite_conclusion(conclusions: list[str | None]) -> str:
    for bad in ("action_required", "timed_out", "failure", "cancelled"):
        if bad in conclusions:
            return bad
    if conclusions and all(c in ("neutral", "skipped") for c in conclusions):
        return "neutral"
    return "success"
