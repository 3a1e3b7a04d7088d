"""GitHub's merge queue: ``merge_group`` and ``pull_request.dequeued`` are noted
(``bot.merge_queue``) and wake the steward, which decides (``bot.core.merge_queue``)."""

from __future__ import annotations

import logging

from bot.events import MergeGroupEvent, PullRequestEvent
from bot.handlers.routing import Deps, Route

log = logging.getLogger(__name__)


async def on_merge_group(evt: MergeGroupEvent, deps: Deps) -> None:
    log.info("merge_group_%s", evt.action, extra={"sha": evt.head_sha, "reason": evt.reason})
    deps.signals.queue.note(evt)
    deps.signals.steward_wake.set()


async def on_pull_request_dequeued(evt: PullRequestEvent, deps: Deps) -> None:
    log.info("pull_dequeued", extra={"pr": evt.pull_number, "reason": evt.reason})
    deps.signals.queue.note(evt)
    deps.signals.steward_wake.set()


ROUTES = (
    Route("merge_group", None, MergeGroupEvent, on_merge_group),
    Route("pull_request", "dequeued", PullRequestEvent, on_pull_request_dequeued),
)
