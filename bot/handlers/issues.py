"""``issues``: an issue changed; its task (if any) is brought up to date from GitHub.

The trigger label counts only when the sender may hand the issue over (write access, or an
allowed bot); a closed or reopened issue that is no task may release or hold its dependents.
"""

from __future__ import annotations

from bot.core.model import IssueRef
from bot.events import IssuesEvent
from bot.handlers.routing import Deps, Route


async def on_issues_labeled(evt: IssuesEvent, deps: Deps) -> None:
    inst, repo, number = evt.installation_id, evt.repo, evt.issue_number
    if not (inst and repo and number):
        return
    ref = IssueRef(repo, number)
    labeled_by = None
    if evt.label_name == deps.repos.config(repo).trigger_label:
        if not await deps.sync.may_trigger(inst, ref, evt.sender_login, evt.sender_type):
            return
        labeled_by = evt.sender_login
    await deps.sync.sync_issue(inst, ref, relabeled=True, labeled_by=labeled_by)
    await deps.sync.sync_dependents(inst, ref)


async def on_issues(evt: IssuesEvent, deps: Deps) -> None:
    """Opened, edited, closed, reopened, unlabeled, ...: re-read the issue."""
    inst, repo, number = evt.installation_id, evt.repo, evt.issue_number
    if not (inst and repo and number):
        return
    ref = IssueRef(repo, number)
    await deps.sync.sync_issue(inst, ref)
    await deps.sync.sync_dependents(inst, ref)


ROUTES = (
    Route("issues", "labeled", IssuesEvent, on_issues_labeled),
    Route("issues", None, IssuesEvent, on_issues),
)
