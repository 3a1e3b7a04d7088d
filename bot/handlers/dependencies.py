"""``issue_dependencies`` and ``sub_issues``: a "blocked by" or parent link changed.

Both issues of the link are re-read (they may live in different repositories).
"""

from __future__ import annotations

from bot.core.model import IssueRef
from bot.events import IssueDependenciesEvent, SubIssuesEvent
from bot.handlers.routing import Deps, Route


async def _resync(inst: int | None, related: tuple[tuple[str, int], ...], deps: Deps) -> None:
    if not inst:
        return
    for repo, number in related:
        await deps.sync.sync_issue(inst, IssueRef(repo, number))
        await deps.sync.sync_dependents(inst, IssueRef(repo, number))


async def on_issue_dependencies(evt: IssueDependenciesEvent, deps: Deps) -> None:
    if evt.repo:
        await _resync(evt.installation_id, evt.related_issues, deps)


async def on_sub_issues(evt: SubIssuesEvent, deps: Deps) -> None:
    if evt.repo:
        await _resync(evt.installation_id, evt.related_issues, deps)


ROUTES = (
    Route("issue_dependencies", None, IssueDependenciesEvent, on_issue_dependencies),
    Route("sub_issues", None, SubIssuesEvent, on_sub_issues),
)
