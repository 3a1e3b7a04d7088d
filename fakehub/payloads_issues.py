"""GitHub's JSON shapes for accounts, Apps, installations, repositories, labels, issues, comments
and reactions; :class:`fakehub.payloads.Payloads` adds pull requests, reviews and checks.

The conventions of ``fakehub/payloads.py`` hold here too: each builder returns the richest shape
GitHub sends for that object, and keys GitHub omits are omitted, never sent as null.
"""

from __future__ import annotations

from typing import Any

from fakehub.records import (
    App,
    Comment,
    Installation,
    Issue,
    Label,
    Reaction,
    Repo,
    User,
    iso,
    node_id,
)
from fakehub.state import State

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
_LABEL_URL = "{/name}"


class IssuePayloads:
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
