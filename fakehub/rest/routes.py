"""The route table of fakehub's REST API under ``/api/v3``.

Each route module exports ``TABLE``, a list of ``(path, methods, handler)``; this module joins
them in order and makes each handler an endpoint. It is the only module that imports the route
modules, and none of them imports it.
"""

from __future__ import annotations

from starlette.routing import Route

from fakehub.hub import Hub
from fakehub.rest import (
    actions,
    apps,
    checks,
    comments,
    dependencies,
    gitdata,
    issues,
    merge_queue,
    pulls,
    repos,
    reviews,
    rulesets,
)
from fakehub.rest.context import Handler
from fakehub.rest.endpoint import ApiFaults, make_endpoint


def routes(hub: Hub, faults: ApiFaults) -> list[Route]:
    # Starlette takes the first route that matches: /issues/comments/{comment_id} must come before
    # /issues/{issue_number}/..., as it did when the issue routes were one table.
    table: list[tuple[str, list[str], Handler]] = [
        *apps.TABLE,
        *repos.TABLE,
        *gitdata.TABLE,
        *rulesets.TABLE,
        *comments.TABLE,
        *issues.TABLE,
        *dependencies.TABLE,
        *pulls.TABLE,
        *merge_queue.TABLE,
        *reviews.TABLE,
        *checks.TABLE,
        *actions.TABLE,
    ]
    return [
        Route("/api/v3" + path, make_endpoint(hub, faults, handler), methods=methods)
        for path, methods, handler in table
    ]
