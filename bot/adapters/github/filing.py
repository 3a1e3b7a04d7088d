"""Filing a plan: creating issues, attaching sub-issues, adding "blocked by" links.

Each is a content-creating request under GitHub's secondary rate limits; the pacing of all the
adapter's writes happens below, in the shared transport (:mod:`bot.adapters.github.pacing`).
The links take database ids (``IssueInfo.id``), never issue numbers: a number given as an id
links whatever issue has that id, anywhere on GitHub.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.adapters.github.client import AdapterBase
from bot.adapters.github.issues import _issue
from bot.adapters.github.records import IssueInfo
from bot.core.model import IssueRef


class FilingCalls(AdapterBase):
    """The writes of ``bot.ports.FilingPort`` (its reads are in ``IssueCalls``)."""

    async def create_issue(
        self, installation_id: int, repo: str, *, title: str, body: str, labels: Sequence[str]
    ) -> IssueInfo:
        owner, name = repo.split("/", 1)
        resp = await self._call(
            self._gh(installation_id).rest.issues.async_create(
                owner, name, title=title, body=body, labels=list(labels)
            )
        )
        return _issue(repo, resp.json())

    async def add_sub_issue(self, installation_id: int, parent: IssueRef, child_id: int) -> None:
        """Attach the issue whose database id is ``child_id`` under ``parent``."""
        owner, name = parent.repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.issues.async_add_sub_issue(
                owner, name, parent.number, sub_issue_id=child_id
            )
        )

    async def add_blocked_by(self, installation_id: int, ref: IssueRef, blocker_id: int) -> None:
        """Record that the issue whose database id is ``blocker_id`` blocks ``ref``."""
        owner, name = ref.repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.issues.async_add_blocked_by_dependency(
                owner, name, ref.number, issue_id=blocker_id
            )
        )
