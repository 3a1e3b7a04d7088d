"""The bot's composition root: each part built once with the ports it uses.

Webhooks are triggers only: each handler re-reads the issue from GitHub (a fresh snapshot)
before deciding, so duplicated, reordered or lost deliveries converge to the same state, and a
periodic reconciliation rebuilds everything from GitHub itself. Decisions come from
``bot.core``; the parts below do the I/O around them:

- ``intake`` (``bot.intake.Intake``): stores verified deliveries and works through them;
- ``router`` (``bot.handlers``): (event, action) -> handler;
- ``sync`` (``bot.issue_sync.IssueSync``): issues become tasks;
- ``views`` (``bot.views.TaskViews``): state changes and what people see of them;
- ``reconciler`` (``bot.reconcile.Reconciler``): state rebuilt from GitHub, the log pruned;
- ``steward`` (``bot.steward.Steward``): pull requests merged in dependency order;
- ``commands`` (``bot.commands.CommandHandler``): ``/stoneforge`` comment commands, with the
  director behind ``plan``/``approve``/``replan`` (``director_side`` wires it in; without it,
  ``NoDirector`` says planning is not available);
- ``signals`` (``bot.signals``): wake-ups and the default branches' tips.

The job side is built next to it by ``job_side`` (one per process, as it holds the tokens
of the jobs it handed out): the ``bot.results.Results`` of finished jobs, the
``bot.dispatch.Dispatcher`` with its job reports and prefetcher, and the
``bot.actions_backend.ActionsBackend`` bound to the ports it uses. Each takes only those.

``Bot`` keeps the names the HTTP service and the tests reach through it (``bot.store``,
``bot.set_state``, ``bot.ready_changed``, ...): each is one of the parts' own, not a copy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from bot.actions_backend import ActionsBackend
from bot.commands import CommandHandler, NoDirector
from bot.core.graph import GraphReport
from bot.core.model import IssueRef, Task, TaskState
from bot.director.filing import PlanFiler
from bot.director.service import Director
from bot.dispatch import Dispatcher
from bot.handlers import HANDLED_EVENTS, ROUTES, Deps, Router
from bot.intake import Intake
from bot.issue_sync import WRITE_PERMISSIONS, IssueSync
from bot.metrics import BotMetrics
from bot.ports import Clock, DirectorPort, GitHubPort
from bot.pull_cache import PullCache
from bot.reconcile import Reconciler
from bot.reporting import Reporter
from bot.repos import Repos
from bot.results import Results
from bot.settings import BotSettings
from bot.signals import Identity, Signals
from bot.steward import Steward
from bot.store import Store, WorkingSet
from bot.views import TaskViews, today

__all__ = ["HANDLED_EVENTS", "WRITE_PERMISSIONS", "Bot", "director_side", "job_side", "today"]


class Bot:
    """Builds the parts and keeps them in one place."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        github: GitHubPort,
        metrics: BotMetrics | None = None,
        *,
        clock: Clock = time.time,
        director: DirectorPort | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.github = github
        self.metrics = metrics
        self.identity = Identity()
        self.signals = Signals()
        self.repos = Repos(settings, store, github)
        self.reporter = Reporter(github, store, settings.public_url)
        # The steward's pull request snapshots; intake forgets those a webhook says changed.
        self.pulls = PullCache(ttl_s=settings.steward_refresh_s)
        self.views = TaskViews(
            store,
            self.repos,
            self.reporter,
            self.signals,
            html_url=settings.html_url,
            retention_s=lambda: self.settings.merged_retention_s,  # read at each refresh
            clock=clock,
        )
        self.sync = IssueSync(
            github,
            store,
            self.repos,
            self.reporter,
            self.views,
            self.signals,
            self.identity,
            clock=clock,
        )
        self.reconciler = Reconciler(
            github,
            store,
            store,
            self.repos,
            self.sync,
            self.views,
            self.pulls,
            self.signals,
            interval_s=settings.reconcile_interval_s,
            retention_s=settings.delivery_retention_s,
            clock=clock,
        )
        self.commands = CommandHandler(
            github, store, self.views, director or NoDirector(), self.signals, clock=clock
        )
        self.router = Router(ROUTES, self.identity)
        self.deps = Deps(
            self.repos, self.sync, self.reconciler, self.signals, github, self.commands
        )
        self.intake = Intake(store, self.pulls, self.identity, self.handle, self.router.events)
        self.steward = Steward(
            github,
            store,
            self.pulls,
            self.repos,
            self.views,
            self.signals,
            self.sync,
            interval_s=settings.steward_interval_s,
            metrics=metrics,
            identity=self.identity,
        )

    # --- the names other parts reach through the root ----------------------------------------
    @property
    def bot_login(self) -> str | None:
        return self.identity.login

    @bot_login.setter
    def bot_login(self, login: str | None) -> None:
        self.identity.login = login

    @property
    def ready_changed(self) -> asyncio.Event:
        return self.signals.ready_changed

    @property
    def steward_wake(self) -> asyncio.Event:
        return self.signals.steward_wake

    @property
    def bases(self) -> dict[str, tuple[int, str]]:
        return self.signals.bases

    @property
    def merging(self) -> set[IssueRef]:
        return self.views.merging

    @property
    def queue(self) -> asyncio.Queue[tuple[str, str, bytes]]:
        return self.intake.queue

    async def handle(self, event: str, payload: Mapping[str, Any]) -> None:
        """Route one event by (event, action). Unknown events are ignored."""
        await self.router.handle(event, payload, self.deps)

    async def ingest(self, guid: str, event: str, body: bytes) -> bool:
        return await self.intake.ingest(guid, event, body)

    async def resume_unprocessed(self) -> None:
        await self.intake.resume_unprocessed()

    async def process_forever(self) -> None:
        await self.intake.process_forever()

    async def is_writer(self, inst: int, repo: str, login: str, kind: str = "User") -> bool:
        return await self.sync.is_writer(inst, repo, login, kind)

    async def graph(self) -> tuple[list[Task], GraphReport]:
        return await self.views.graph()

    async def working_set(self) -> WorkingSet:
        return await self.views.working_set()

    async def day_budget_spent(self, repo: str, now: float) -> tuple[float, float] | None:
        return await self.views.day_budget_spent(repo, now)

    def transcript_added(self, task: Task) -> None:
        self.views.transcript_added(task)

    async def set_state(self, task: Task, state: TaskState, **fields: Any) -> Task:
        return await self.views.set_state(task, state, **fields)

    async def refresh_views(self) -> None:
        await self.views.refresh_views()

    def snapshot(self, tasks: list[Task]) -> list[dict[str, Any]]:
        return self.views.snapshot(tasks)

    def background_tasks(self) -> set[asyncio.Task[None]]:
        return self.views.background_tasks()

    async def reconcile_forever(self) -> None:
        await self.reconciler.reconcile_forever()

    async def prune_deliveries(self) -> int:
        return await self.reconciler.prune_deliveries()

    async def redeliver_failed(self) -> int:
        return await self.reconciler.redeliver_failed()


def job_side(
    bot: Bot, actions: ActionsBackend | None = None, *, clock: Clock = time.time
) -> Dispatcher:
    """The dispatcher (and the results of its jobs) built from the root's ports and parts;
    ``actions``, when given, is bound to the ones it uses."""
    results = Results(
        bot.github,
        bot.store,
        bot.repos,
        bot.views,
        bot.signals,
        public_url=bot.settings.public_url,
        clock=clock,
    )
    if actions is not None:
        actions.bind(bot.github, bot.store, bot.views, lease_s=bot.settings.lease_s)
    return Dispatcher(
        bot.github,
        bot.store,
        bot.repos,
        bot.views,
        bot.signals,
        bot.identity,
        bot.sync,
        results,
        lease_s=bot.settings.lease_s,
        metrics=bot.metrics,
        clock=clock,
    )


def director_side(bot: Bot, dispatcher: Dispatcher, *, clock: Clock = time.time) -> Director:
    """The director, joined to the dispatcher (plan jobs are claimed first; its tasks' jobs
    carry the plan's context) and to the views (a task's state change redraws its plan)."""
    director = Director(
        bot.github,
        bot.store,
        bot.repos,
        bot.views,
        bot.sync,
        PlanFiler(bot.github, bot.store, clock=clock),
        bot.signals,
        bot.identity,
        lease_s=bot.settings.lease_s,
        public_url=bot.settings.public_url,
        clock=clock,
    )
    dispatcher.plans = director
    bot.views.observers.append(director.task_moved)
    bot.commands.director = director  # /stoneforge plan, approve, replan, status on an epic
    return director
