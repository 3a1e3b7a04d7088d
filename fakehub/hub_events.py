"""The Hub's foundation: the pieces it owns and the webhooks it sends.

:class:`HubEvents` holds ``State``, ``GitStore``, ``WebhookSender`` and ``Payloads``, delivers an
event to every App installed on a repository (:meth:`HubEvents.emit`), and builds the ``push``
webhook body from real git. :class:`fakehub.hub_checks.HubChecks` and :class:`fakehub.hub.Hub`
build on it.
"""

from __future__ import annotations

import subprocess
from typing import Any

from fakehub.delivery import WebhookSender
from fakehub.gitstore import ZERO_SHA, GitStore, Identity, git_env
from fakehub.payloads import Payloads
from fakehub.records import Repo, User
from fakehub.state import State

ALWAYS_SENT = {"installation", "installation_repositories"}


class HubEvents:
    """The pieces and ``emit``; see :class:`fakehub.hub.Hub` for the whole."""

    def __init__(self, state: State, store: GitStore, sender: WebhookSender, url: str) -> None:
        self.state = state
        self.store = store
        self.sender = sender
        self.payloads = Payloads(state, url)

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

    # -- push webhook bodies ---------------------------------------------------------------
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
