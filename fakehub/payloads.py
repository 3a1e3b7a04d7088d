"""GitHub's JSON shapes for fakehub's model objects, shared by REST responses and webhooks.

Each function returns the richest shape GitHub sends for that object, so one dict satisfies both
the REST schema (``issue``, ``pull-request``, ``full-repository``…) and the webhook schema of the
same object. Keys GitHub omits are omitted, never sent as null. ``tests/fakehub/test_fidelity.py``
validates every shape against GitHub's OpenAPI descriptions.
"""

from __future__ import annotations

from typing import Any

from fakehub.state import (
    App,
    CheckRun,
    CheckSuite,
    Comment,
    Installation,
    Issue,
    Label,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    State,
    Status,
    User,
    iso,
    node_id,
)

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
_LABEL_URL = "{/name}"
WEBHOOK_APP_EVENTS = frozenset(
    "branch_protection_rule check_run check_suite code_scanning_alert commit_comment create "
    "delete deployment deployment_review deployment_status deploy_key discussion "
    "discussion_comment fork gollum issues issue_comment label member membership milestone "
    "organization org_block page_build project project_card project_column public pull_request "
    "pull_request_review pull_request_review_comment push registry_package release repository "
    "repository_dispatch secret_scanning_alert star status team team_add watch workflow_dispatch "
    "workflow_run merge_group pull_request_review_thread workflow_job".split()
)


class Payloads:
    """JSON builders bound to one server address (``http://127.0.0.1:PORT``)."""

    def __init__(self, state: State, url: str) -> None:
        self.state = state
        self.url = url.rstrip("/")
        self.api = self.url + "/api/v3"

    # -- accounts --------------------------------------------------------------------------
    def user(self, u: User) -> dict[str, Any]:
        api = f"{self.api}/users/{u.login}"
        return {
            "login": u.login,
            "id": u.id,
            "node_id": u.node_id,
            "avatar_url": f"{self.url}/avatars/u/{u.id}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.url}/{u.login}"
            if u.type != "Bot"
            else f"{self.url}/apps/" + u.login.removesuffix("[bot]"),
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": u.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def organization(self, u: User) -> dict[str, Any]:
        api = f"{self.api}/orgs/{u.login}"
        return {
            "login": u.login,
            "id": u.id,
            "node_id": u.node_id,
            "url": api,
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks",
            "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": f"{self.url}/avatars/u/{u.id}",
            "description": None,
        }

    def app(self, app: App) -> dict[str, Any]:
        return {
            "id": app.id,
            "slug": app.slug,
            "client_id": app.client_id,
            "node_id": node_id("A", app.id),
            "owner": self.user(app.owner),
            "name": app.name,
            "description": "",
            "external_url": f"{self.url}/apps/{app.slug}",
            "html_url": f"{self.url}/apps/{app.slug}",
            "created_at": iso(app.created_at),
            "updated_at": iso(app.created_at),
            "permissions": dict(app.permissions),
            "events": list(app.events),
        }

    def installation(self, inst: Installation) -> dict[str, Any]:
        account = self.user(inst.account)
        # GitHub's description types the account as simple-user AND enterprise (allOf) on
        # some routes; these enterprise keys keep both readings valid.
        account.update(
            name=inst.account.name or inst.account.login,
            slug=inst.account.login.lower(),
            description=None,
            website_url=None,
            created_at=iso(inst.account.created_at),
            updated_at=iso(inst.account.created_at),
        )
        return {
            "id": inst.id,
            "client_id": inst.app.client_id,
            "account": account,
            "repository_selection": "selected",
            "access_tokens_url": f"{self.api}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.url}/settings/installations/{inst.id}",
            "app_id": inst.app.id,
            "app_slug": inst.app.slug,
            "target_id": inst.account.id,
            "target_type": inst.account.type,
            "permissions": dict(inst.permissions),
            "events": list(inst.events),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def installation_ref(self, inst: Installation) -> dict[str, Any]:
        return {"id": inst.id, "node_id": node_id("MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u", inst.id)}

    # -- repositories ----------------------------------------------------------------------
    def repo(self, r: Repo, *, full: bool = False) -> dict[str, Any]:
        html = f"{self.url}/{r.full_name}"
        api = f"{self.api}/repos/{r.full_name}"
        open_count = sum(1 for i in r.issues.values() if i.state == "open")
        body: dict[str, Any] = {
            "id": r.id,
            "node_id": node_id("R", r.id),
            "name": r.name,
            "full_name": r.full_name,
            "private": r.private,
            "owner": self.user(r.owner),
            "html_url": html,
            "description": r.description,
            "fork": False,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": iso(r.created_at),
            "updated_at": iso(r.pushed_at),
            "pushed_at": iso(r.pushed_at),
            "git_url": f"git://{self.url.split('://', 1)[1]}/{r.full_name}.git",
            "ssh_url": f"git@{self.url.split('://', 1)[1].split(':')[0]}:{r.full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": False,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_count,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if r.private else "public",
            "forks": 0,
            "open_issues": open_count,
            "watchers": 0,
            "default_branch": r.default_branch,
        }
        if full:
            body.update(
                {
                    "allow_squash_merge": True,
                    "allow_merge_commit": True,
                    "allow_rebase_merge": True,
                    "allow_auto_merge": False,
                    "delete_branch_on_merge": False,
                    "allow_update_branch": True,
                    "use_squash_pr_title_as_default": False,
                    "squash_merge_commit_message": "COMMIT_MESSAGES",
                    "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                    "merge_commit_message": "PR_TITLE",
                    "merge_commit_title": "MERGE_MESSAGE",
                    "network_count": 0,
                    "subscribers_count": 0,
                }
            )
        return body

    def label(self, r: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": node_id("LA", label.id),
            "url": f"{self.api}/repos/{r.full_name}/labels/{label.name}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
            # githubkit's 2026-03-10 models require these; GitHub sends them for label objects.
            "archived_at": None,
            "archived_by": None,
        }

    # -- issues and comments ---------------------------------------------------------------
    def reactions(self, api_url: str, reactions: list[Reaction]) -> dict[str, Any]:
        counts: dict[str, Any] = {k: 0 for k in REACTIONS}
        for reaction in reactions:
            counts[reaction.content] += 1
        return {"url": f"{api_url}/reactions", "total_count": len(reactions), **counts}

    def reaction(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": node_id("REA", reaction.id),
            "user": self.user(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    def issue(self, i: Issue, *, with_repo: bool = False) -> dict[str, Any]:
        r = i.repo
        api = f"{self.api}/repos/{r.full_name}/issues/{i.number}"
        kind = "pull" if i.pull else "issues"
        blockers = [self.state.issues_by_id.get(b) for b in i.blocked_by]
        blocking = [x for x in self.state.issues_by_id.values() if i.id in x.blocked_by]
        children = [self.state.issues_by_id.get(c) for c in i.children]
        done = sum(1 for c in children if c is not None and c.state == "closed")
        body: dict[str, Any] = {
            "url": api,
            "repository_url": f"{self.api}/repos/{r.full_name}",
            "labels_url": f"{api}/labels{_LABEL_URL}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{self.url}/{r.full_name}/{kind}/{i.number}",
            "id": i.id,
            "node_id": i.node_id,
            "number": i.number,
            "title": i.title,
            "user": self.user(i.user),
            "labels": [self.label(r, lbl) for lbl in i.labels],
            "state": i.state,
            "locked": False,
            "assignee": self.user(i.assignees[0]) if i.assignees else None,
            "assignees": [self.user(a) for a in i.assignees],
            "milestone": None,
            "comments": i.comments,
            "created_at": iso(i.created_at),
            "updated_at": iso(i.updated_at),
            "closed_at": iso(i.closed_at) if i.closed_at else None,
            "author_association": self.association(r, i.user),
            "active_lock_reason": None,
            "body": i.body,
            "closed_by": self.user(i.closed_by) if i.closed_by else None,
            "reactions": self.reactions(api, i.reactions),
            "timeline_url": f"{api}/timeline",
            "performed_via_github_app": self.app(i.app) if i.app else None,
            "state_reason": i.state_reason,
            "sub_issues_summary": {
                "total": len(children),
                "completed": done,
                "percent_completed": (done * 100 // len(children)) if children else 0,
            },
            "issue_dependencies_summary": {
                "blocked_by": sum(1 for b in blockers if b is not None and b.state == "open"),
                "blocking": sum(1 for b in blocking if b.state == "open"),
                "total_blocked_by": len(blockers),
                "total_blocking": len(blocking),
            },
        }
        if i.parent is not None and (parent := self.state.issues_by_id.get(i.parent)):
            body["parent_issue_url"] = (
                f"{self.api}/repos/{parent.repo.full_name}/issues/{parent.number}"
            )
        if i.pull:
            pr_api = f"{self.api}/repos/{r.full_name}/pulls/{i.number}"
            body["draft"] = i.pull.draft
            body["pull_request"] = {
                "url": pr_api,
                "html_url": f"{self.url}/{r.full_name}/pull/{i.number}",
                "diff_url": f"{self.url}/{r.full_name}/pull/{i.number}.diff",
                "patch_url": f"{self.url}/{r.full_name}/pull/{i.number}.patch",
                "merged_at": iso(i.pull.merged_at) if i.pull.merged_at else None,
            }
        if with_repo:
            body["repository"] = self.repo(r)
        return body

    def association(self, r: Repo, u: User) -> str:
        if u.id == r.owner.id:
            return "OWNER"
        role = r.collaborators.get(u.login.lower())
        if role:
            return "COLLABORATOR"
        return "NONE"

    def comment(self, c: Comment) -> dict[str, Any]:
        r = c.issue.repo
        api = f"{self.api}/repos/{r.full_name}/issues/comments/{c.id}"
        kind = "pull" if c.issue.pull else "issues"
        return {
            "url": api,
            "html_url": f"{self.url}/{r.full_name}/{kind}/{c.issue.number}#issuecomment-{c.id}",
            "issue_url": f"{self.api}/repos/{r.full_name}/issues/{c.issue.number}",
            "id": c.id,
            "node_id": node_id("IC", c.id),
            "user": self.user(c.user),
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
            "author_association": self.association(r, c.user),
            "body": c.body,
            "reactions": self.reactions(api, c.reactions),
            "performed_via_github_app": self.app(c.app) if c.app else None,
        }

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
