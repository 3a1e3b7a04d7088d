"""The bot's HTTP service: webhook intake, the runner API, health and a read-only task view.

Ingress is thin (``bot/webhook_ingress.py``, in front of the routes): verify the signature
over the raw body, store the delivery, queue it, answer 202. No GitHub call and no decision
happens on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse

from bot.actions_backend import ActionsBackend, actions_router
from bot.adapters.github import GitHubAdapter, GitHubError, WriteBudget
from bot.metrics import bot_metrics
from bot.ports import GitHubPort
from bot.runner_api import runner_router, transcript_router
from bot.service import Bot, director_side, job_side
from bot.settings import BotSettings
from bot.store import Store
from bot.webhook_ingress import WebhookIngress

log = logging.getLogger(__name__)


def create_app(settings: BotSettings, *, github: GitHubPort | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_url)
        own: GitHubAdapter | None = None  # the adapter this app made, closed with it
        gh: GitHubPort
        if github is None:
            gh = own = GitHubAdapter(
                app_id=settings.app_id,
                private_key=settings.private_key,
                base_url=settings.github_api_url,
                write_budget=WriteBudget(
                    per_minute=settings.github_writes_per_minute,
                    per_hour=settings.github_writes_per_hour,
                ),
            )
        else:
            gh = github
        bot = Bot(settings, store, gh, metrics)
        dispatcher = job_side(bot, actions)
        director = director_side(bot, dispatcher)
        app.state.bot = bot
        app.state.dispatcher = dispatcher
        app.state.director = director
        metrics.watch_tasks(store.task_counts)
        metrics.delivery_queue_depth.set_callback(bot.queue.qsize)
        steward = bot.steward
        try:
            bot.bot_login = f"{await gh.app_slug()}[bot]"
        except GitHubError as exc:
            log.warning("app_lookup_failed: %s", exc)
        await bot.repos.load_known()
        await bot.resume_unprocessed()
        jobs = [
            asyncio.create_task(bot.process_forever(), name="intake"),
            asyncio.create_task(steward.run_forever(), name="steward"),
            asyncio.create_task(_after_downtime(bot), name="reconcile"),
            asyncio.create_task(dispatcher.expire_leases_forever(), name="leases"),
            asyncio.create_task(dispatcher.pump_actions(actions), name="actions"),
            asyncio.create_task(director.run_forever(), name="director"),
        ]
        try:
            yield
        finally:
            pending = set(jobs) | bot.background_tasks() | director.background_tasks()
            while pending:  # cancel until each has stopped, never wait on one that ignored it
                for job in pending:
                    job.cancel()
                _, pending = await asyncio.wait(pending, timeout=1.0)
            try:
                await asyncio.wait_for(dispatcher.prefetcher.close(), timeout=5.0)
            except TimeoutError:
                log.warning("prefetch_tokens_not_revoked: GitHub did not answer in time")
            if own is not None:
                await own.aclose()
            store.close()

    metrics = bot_metrics()
    actions = ActionsBackend(bot_url=settings.public_url)
    app = FastAPI(title="Stoneforge bot", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.actions_backend = actions
    app.include_router(actions_router(actions))
    # POST /webhooks/github: a plain ASGI layer in front of the routes (bot/webhook_ingress.py)
    app.add_middleware(
        WebhookIngress,
        settings=settings,
        metrics=metrics,
        intake=lambda: getattr(app.state, "bot", None),
    )
    app.include_router(runner_router(settings))
    app.include_router(transcript_router())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics_page() -> PlainTextResponse:
        text = await asyncio.to_thread(metrics.render)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get("/api/tasks")
    async def tasks(request: Request) -> list[dict[str, Any]]:
        """The working set (tasks not merged, and those merged within the retention), or with
        ``?all=true`` every task ever made (its cost grows with the history)."""
        bot: Bot = request.app.state.bot
        if request.query_params.get("all") in ("1", "true"):
            return bot.snapshot(await asyncio.to_thread(bot.store.list_tasks))
        return bot.snapshot(list((await bot.views.working_set()).tasks))

    return app


async def _after_downtime(bot: Bot) -> None:
    """At start-up: redeliver what failed while we were down, then reconcile periodically."""
    await bot.redeliver_failed()
    await bot.reconcile_forever()


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="body must be JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return data
