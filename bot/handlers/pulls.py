"""Pull requests, their reviews, checks and statuses: triggers for the steward.

The steward re-reads the pull request (``bot.pull_cache`` already forgot the snapshot a
delivery says changed) and decides; a "changes requested" review sends the task back to its
agent from there.
"""

from __future__ import annotations

import logging

from bot.events import (
    CheckRunEvent,
    CheckSuiteEvent,
    PullRequestEvent,
    PullRequestReviewEvent,
    StatusEvent,
)
from bot.handlers.routing import Deps, Route

log = logging.getLogger(__name__)


async def on_pull_request(evt: PullRequestEvent, deps: Deps) -> None:
    deps.signals.steward_wake.set()


async def on_pull_request_review(evt: PullRequestReviewEvent, deps: Deps) -> None:
    log.info("review_%s", evt.action, extra={"pr": evt.pull_number, "by": evt.review_by})
    deps.signals.steward_wake.set()


async def on_check_run(evt: CheckRunEvent, deps: Deps) -> None:
    deps.signals.steward_wake.set()


async def on_check_suite(evt: CheckSuiteEvent, deps: Deps) -> None:
    deps.signals.steward_wake.set()


async def on_status(evt: StatusEvent, deps: Deps) -> None:
    deps.signals.steward_wake.set()


ROUTES = (
    Route("pull_request", None, PullRequestEvent, on_pull_request),
    Route("pull_request_review", None, PullRequestReviewEvent, on_pull_request_review),
    Route("check_run", None, CheckRunEvent, on_check_run),
    Route("check_suite", None, CheckSuiteEvent, on_check_suite),
    Route("status", None, StatusEvent, on_status),
)
