"""Git refs and merges through the REST API: the speculative merge queue's candidates.

A candidate is built as bors-ng builds its staging commit: a scratch branch is set to the commit
to build on, the pull request's head is merged into it (``POST /repos/{o}/{r}/merges``, a real
merge commit), and the candidate's own branch is pointed at that commit, so CI runs once per
candidate and never on the scratch branch. Landing moves the base to a tested commit with a
non-forced update of its ref: GitHub refuses anything but a fast-forward (422 "Update is not
a fast forward"), the compare-and-swap that makes "what lands is what was tested" hold.
"""

from __future__ import annotations

from bot.adapters.github.client import AdapterBase, GitHubError


class MergeConflict(Exception):
    """``POST /merges`` answered 409: the head does not merge cleanly into the branch."""


class GitCalls(AdapterBase):
    """Branches as refs, and merge commits made by GitHub."""

    async def set_branch(self, installation_id: int, repo: str, branch: str, sha: str) -> None:
        """Point ``branch`` at ``sha``, creating it or moving it (forced: the bot's own
        scratch and candidate branches only)."""
        owner, name = repo.split("/", 1)
        git = self._gh(installation_id).rest.git
        try:
            await self._call(
                git.async_create_ref(owner, name, data={"ref": f"refs/heads/{branch}", "sha": sha})
            )
        except GitHubError as exc:
            if exc.status != 422:  # "Reference already exists"
                raise
            await self._call(
                git.async_update_ref(
                    owner, name, f"heads/{branch}", data={"sha": sha, "force": True}
                )
            )

    async def fast_forward(self, installation_id: int, repo: str, branch: str, sha: str) -> bool:
        """Move ``branch`` to ``sha`` only if that is a fast-forward; False when GitHub refuses
        (the branch moved: 422)."""
        owner, name = repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.git.async_update_ref(
                    owner, name, f"heads/{branch}", data={"sha": sha, "force": False}
                )
            )
        except GitHubError as exc:
            if exc.status == 422:
                return False
            raise
        return True

    async def merge_into(
        self, installation_id: int, repo: str, branch: str, head: str, message: str
    ) -> tuple[str, str] | None:
        """Merge ``head`` into ``branch`` with a merge commit: the branch's new tip and its
        first parent (the tip it merged into), or None when the branch contains ``head``
        already (204); ``MergeConflict`` on 409."""
        owner, name = repo.split("/", 1)
        try:
            answer = await self._call(
                self._gh(installation_id).rest.repos.async_merge(
                    owner, name, data={"base": branch, "head": head, "commit_message": message}
                )
            )
        except GitHubError as exc:
            if exc.status == 409:
                raise MergeConflict(exc.message) from None
            raise
        if answer.status_code == 204:
            return None
        data = answer.json()
        return str(data["sha"]), str(data["parents"][0]["sha"])
