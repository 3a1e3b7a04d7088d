"""``issue_comment``: a new comment may be a ``/stoneforge`` command (``bot.commands``).

Only ``created`` comments are commands: an ``edited`` one is not a new command (GitHub sends
the old body in ``changes.body.from``, and acting on it would run a command twice), and a
``deleted`` one says nothing; neither is routed. Comments from bots count only from the bots
the repository allows (``bots.allow``, as for the trigger label); the App's own never do (the
router drops deliveries it sent, and a comment it wrote is dropped here too).
"""

from __future__ import annotations

from bot.commands import CommandComment
from bot.core.model import IssueRef
from bot.events import IssueCommentEvent
from bot.handlers.routing import Deps, Route


async def on_issue_comment_created(evt: IssueCommentEvent, deps: Deps) -> None:
    inst, repo, number = evt.installation_id, evt.repo, evt.issue_number
    comment_id, author = evt.comment_id, evt.comment_by or evt.sender_login
    if deps.commands is None or not (inst and repo and number and comment_id and author):
        return
    if deps.sync.identity.is_self(author):
        return  # our own reply, whoever the delivery names as its sender
    kind = evt.comment_by_type or evt.sender_type or "User"
    if kind == "Bot" and author not in deps.repos.config(repo).bots.allow:
        return
    await deps.commands.handle(
        CommandComment(
            inst, IssueRef(repo, number), comment_id, evt.comment_body or "", author, kind
        )
    )


ROUTES = (Route("issue_comment", "created", IssueCommentEvent, on_issue_comment_created),)
