"""Comment commands' calls: the eyes reaction on a command comment, and the bot's reply."""

from __future__ import annotations

from bot.adapters.github.client import AdapterBase
from bot.adapters.github.issues import _REACTIONS
from bot.core.model import IssueRef


class CommentCalls(AdapterBase):
    """What ``bot.commands`` writes on GitHub besides the task's own state."""

    async def react_to_comment(
        self, installation_id: int, repo: str, comment_id: int, content: str
    ) -> None:
        """React to an issue comment (GitHub answers 201 when made, 200 when it exists)."""
        reaction = _REACTIONS.get(content)
        if reaction is None:
            raise ValueError(f"not a GitHub reaction: {content!r}")
        owner, name = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.reactions.async_create_for_issue_comment(
                owner, name, comment_id, content=reaction
            )
        )

    async def reply(self, installation_id: int, ref: IssueRef, body: str) -> int:
        """Post a new comment on the issue; its id."""
        owner, name = ref.repo.split("/", 1)
        resp = await self._call(
            self._gh(installation_id).rest.issues.async_create_comment(
                owner, name, ref.number, body=body
            )
        )
        return int(resp.json()["id"])
