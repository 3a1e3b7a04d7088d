"""Repositories: metadata, collaborator permission, file contents, refs, check runs, workflows."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

from bot.adapters.github.client import AdapterBase, GitHubError
from bot.adapters.github.records import RepoInfo


class RepoCalls(AdapterBase):
    """A repository's metadata and contents, and the checks and workflows we start on it."""

    async def installation_repos(self, installation_id: int) -> list[RepoInfo]:
        gh = self._gh(installation_id)
        repos: list[RepoInfo] = []
        page = 1
        while True:
            resp = await self._call(
                gh.rest.apps.async_list_repos_accessible_to_installation(per_page=100, page=page)
            )
            items = resp.json().get("repositories", [])
            repos.extend(self._remember(item) for item in items)
            if len(items) < 100:
                return repos
            page += 1

    def _remember(self, data: Mapping[str, Any]) -> RepoInfo:
        info = RepoInfo(
            full_name=data["full_name"],
            id=int(data["id"]),
            default_branch=data.get("default_branch") or "main",
            clone_url=data["clone_url"],
        )
        self._repo_cache[info.full_name] = info
        return info

    async def repo(self, installation_id: int, repo: str) -> RepoInfo:
        cached = self._repo_cache.get(repo)
        if cached:
            return cached
        owner, name = repo.split("/", 1)
        resp = await self._call(self._gh(installation_id).rest.repos.async_get(owner, name))
        return self._remember(resp.json())

    async def permission(self, installation_id: int, repo: str, login: str) -> str:
        """The user's permission on the repository (cached for a minute)."""
        key = (repo, login)
        cached = self._perm_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        owner, name = repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.repos.async_get_collaborator_permission_level(
                    owner, name, login
                )
            )
            perm = str(resp.json().get("permission") or "none")
        except GitHubError as exc:
            if exc.status != 404:
                raise
            perm = "none"
        self._perm_cache[key] = (time.monotonic() + 60, perm)
        return perm

    async def file(
        self, installation_id: int, repo: str, path: str, ref: str | None = None
    ) -> tuple[str, str] | None:
        """A text file's content and blob sha at ``ref`` (default branch), or None if absent."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        try:
            if ref is None:
                resp = await self._call(gh.rest.repos.async_get_content(owner, name, path))
            else:
                resp = await self._call(gh.rest.repos.async_get_content(owner, name, path, ref=ref))
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        data = resp.json()
        if not isinstance(data, Mapping) or data.get("type") != "file":
            return None
        raw = base64.b64decode(str(data.get("content") or ""))
        return raw.decode("utf-8", errors="replace"), str(data.get("sha") or "")

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str:
        owner, name = repo.split("/", 1)
        # The ref, not the branch: GitHub's branch resource carries the whole commit object.
        resp = await self._call(
            self._gh(installation_id).rest.git.async_get_ref(owner, name, f"heads/{branch}")
        )
        return str(resp.json()["object"]["sha"])

    async def report_check(
        self,
        installation_id: int,
        repo: str,
        head_sha: str,
        *,
        name: str,
        conclusion: str,
        title: str,
        summary: str,
    ) -> None:
        owner, name_ = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.checks.async_create(  # type: ignore[call-overload]
                owner,
                name_,
                name=name,
                head_sha=head_sha,
                status="completed",
                conclusion=conclusion,
                output={"title": title, "summary": summary[:65000]},
            )
        )

    async def write_check(
        self,
        installation_id: int,
        repo: str,
        head_sha: str,
        *,
        name: str,
        conclusion: str | None,
        title: str,
        summary: str,
        run_id: int | None = None,
    ) -> int:
        """Create a check run on ``head_sha``, or update run ``run_id``; its id.

        ``conclusion`` None keeps it in progress. A run created again after a restart is
        harmless: GitHub shows the newest run of a name in the App's check suite.
        """
        owner, name_ = repo.split("/", 1)
        checks = self._gh(installation_id).rest.checks
        state: dict[str, Any] = (
            {"status": "in_progress"}
            if conclusion is None
            else {"status": "completed", "conclusion": conclusion}
        )
        output = {"title": title[:200], "summary": summary[:65000]}
        if run_id is not None:
            try:
                # (the body is built as a dict: its status decides which overload applies)
                body = {**state, "output": output}
                await self._call(checks.async_update(owner, name_, run_id, data=body))  # type: ignore[call-overload]
                return run_id
            except GitHubError as exc:
                if exc.status != 404:  # gone: create it again
                    raise
        body = {"name": name, "head_sha": head_sha, **state, "output": output}
        resp = await self._call(checks.async_create(owner, name_, data=body))  # type: ignore[call-overload]
        return int(resp.json()["id"])

    # --- GitHub Actions ---------------------------------------------------------------------
    async def dispatch_workflow(
        self, installation_id: int, repo: str, workflow: str, ref: str, inputs: dict[str, str]
    ) -> None:
        """Start a ``workflow_dispatch`` run of ``workflow`` (its file name) on ``ref``.

        Only ``ref`` and ``inputs`` are sent: githubkit's body validation silently drops fields
        its schema lacks (research §6.6), and older GHES refuse ``return_run_details``.
        """
        owner, name = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.actions.async_create_workflow_dispatch(
                owner, name, workflow, ref=ref, inputs=inputs
            )
        )
