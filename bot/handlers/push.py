"""``push``: a push to the default branch may change the configuration and moves the base
(runners may fetch it ahead); any push may unblock pull requests."""

from __future__ import annotations

from bot.events import PushEvent
from bot.handlers.routing import Deps, Route


async def on_push(evt: PushEvent, deps: Deps) -> None:
    inst, repo = evt.installation_id, evt.repo
    if not (inst and repo):
        return
    deps.signals.steward_wake.set()
    if evt.ref == f"refs/heads/{evt.default_branch}":
        after = evt.after or ""
        if after.strip("0"):  # not a deletion
            deps.signals.note_base(repo, inst, after)
        await deps.repos.load_config(inst, await deps.github.repo(inst, repo))


ROUTES = (Route("push", None, PushEvent, on_push),)
