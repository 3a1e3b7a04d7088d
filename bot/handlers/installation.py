"""``installation`` and ``installation_repositories``: the App gained or lost repositories.

New ones are reconciled from GitHub at once; removed ones are forgotten and their waiting or
running tasks cancelled.
"""

from __future__ import annotations

from bot.events import InstallationEvent, InstallationRepositoriesEvent
from bot.handlers.routing import Deps, Route


async def on_installation_deleted(evt: InstallationEvent, deps: Deps) -> None:
    if evt.installation_id:
        for name in evt.repos_removed:
            await deps.reconciler.forget_repo(name)


async def on_installation(evt: InstallationEvent, deps: Deps) -> None:
    """Created, unsuspended, new permissions accepted, ...: rebuild from GitHub."""
    if evt.installation_id:
        await deps.reconciler.reconcile_installation(evt.installation_id)


async def on_installation_repositories(evt: InstallationRepositoriesEvent, deps: Deps) -> None:
    if not evt.installation_id:
        return
    for name in evt.repos_removed:
        await deps.reconciler.forget_repo(name)
    if evt.repos_added:
        await deps.reconciler.reconcile_installation(evt.installation_id)


ROUTES = (
    Route("installation", "deleted", InstallationEvent, on_installation_deleted),
    Route("installation", None, InstallationEvent, on_installation),
    Route(
        "installation_repositories",
        None,
        InstallationRepositoriesEvent,
        on_installation_repositories,
    ),
)
