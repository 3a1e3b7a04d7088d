"""Webhook handlers, one module per kind of event, composed once into ``ROUTES``.

``HANDLED_EVENTS`` is what ``app.yml`` subscribes to (a test checks): every routed event except
the installation events, which GitHub sends every App without a subscription.
"""

from __future__ import annotations

from typing import Any

from bot.handlers import comments, dependencies, installation, issues, merge_queue, pulls, push
from bot.handlers.routing import Deps, Route, Router

ROUTES: tuple[Route[Any], ...] = (
    *issues.ROUTES,
    *comments.ROUTES,
    *dependencies.ROUTES,
    *pulls.ROUTES,
    *merge_queue.ROUTES,
    *push.ROUTES,
    *installation.ROUTES,
)

#: Every event a handler acts on that an App subscribes to (``app.yml``'s ``default_events``).
HANDLED_EVENTS = frozenset(r.event for r in ROUTES if not r.event.startswith("installation"))

__all__ = ["HANDLED_EVENTS", "ROUTES", "Deps", "Route", "Router"]
