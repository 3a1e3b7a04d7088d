"""The webhook table: (event, action) -> a typed handler, composed once.

Each handler module (``issues``, ``comments``, ``dependencies``, ``pulls``, ``push``,
``installation``) lists its ``ROUTES``; ``Router`` joins them. A delivery is parsed once, into
its event's model (``bot.events``); the router drops the App's own echoes, makes sure the
repository is set up, and calls the handler for ``(event, action)``, else the one for
``(event, None)``, else nothing.
Handlers are triggers: each re-reads what it acts on from GitHub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.commands import CommandHandler
from bot.events import Envelope, parse_event
from bot.issue_sync import IssueSync
from bot.logs import bind
from bot.ports import RepoPort
from bot.reconcile import Reconciler
from bot.repos import Repos
from bot.signals import Identity, Signals

E = TypeVar("E", bound=Envelope)


@dataclass(frozen=True)
class Deps:
    """What handlers may use: the parts they drive, and GitHub's repository verbs."""

    repos: Repos
    sync: IssueSync
    reconciler: Reconciler
    signals: Signals
    github: RepoPort
    #: comment commands (``bot.commands``); None: comments are not acted on
    commands: CommandHandler | None = None


@dataclass(frozen=True)
class Route(Generic[E]):
    """``handler`` answers ``event`` with ``action`` (``None``: any action not routed alone)."""

    event: str
    action: str | None
    model: type[E]
    handler: Callable[[E, Deps], Awaitable[None]]

    async def __call__(self, parsed: Envelope, deps: Deps) -> None:
        assert isinstance(parsed, self.model)  # parse_event picked the model by event
        await self.handler(parsed, deps)


class Router:
    def __init__(self, routes: Iterable[Route[Any]], identity: Identity) -> None:
        self.identity = identity
        self._table: dict[tuple[str, str | None], Route[Any]] = {}
        for route in routes:
            key = (route.event, route.action)
            if key in self._table:
                raise ValueError(f"two handlers for {key}")
            self._table[key] = route

    @property
    def events(self) -> frozenset[str]:
        """Every event some handler answers."""
        return frozenset(event for event, _ in self._table)

    def route(self, event: str, action: str | None) -> Route[Any] | None:
        return self._table.get((event, action)) or self._table.get((event, None))

    async def handle(self, event: str, payload: Mapping[str, Any], deps: Deps) -> None:
        """Route one delivery by (event, action). Unknown events are ignored."""
        parsed = parse_event(event, payload)
        if self.identity.is_self(parsed.sender_login):
            return  # our own writes: acting on them would loop
        route = self.route(event, parsed.action)
        inst, repo = parsed.installation_id, parsed.repo
        with bind(repo=repo, issue=getattr(parsed, "issue_number", None)):
            if inst and repo and not event.startswith("installation"):
                await deps.repos.ensure(inst, repo)
            if route is not None:
                await route(parsed, deps)
