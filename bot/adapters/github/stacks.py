"""Stacked pull requests (``scheduling.dispatch: stacked``): retargeting one to another base,
and whether a commit is still in a branch."""

from __future__ import annotations

from bot.adapters.github.client import AdapterBase, GitHubError


class StackCalls(AdapterBase):
    """A pull request's base, and commit ancestry (``GET .../compare/{base}...{head}``)."""

    async def retarget_pull(self, installation_id: int, repo: str, number: int, base: str) -> bool:
        """Change a pull request's base branch; False when GitHub refuses it (422: that
        branch does not exist)."""
        owner, name = repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.pulls.async_update(owner, name, number, base=base)
            )
        except GitHubError as exc:
            if exc.status == 422:
                return False
            raise
        return True

    async def contains(self, installation_id: int, repo: str, commit: str, head: str) -> bool:
        """Whether ``commit`` is ``head`` or one of its ancestors. A commit GitHub no longer
        has (404: its branch was rewritten and the commit collected) is not."""
        owner, name = repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.repos.async_compare_commits(
                    owner, name, f"{commit}...{head}", per_page=1
                )
            )
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise
        return str(resp.json().get("status")) in ("ahead", "identical")
