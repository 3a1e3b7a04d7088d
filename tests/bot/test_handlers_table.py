"""The webhook table: one typed handler per (event, action), composed once from the modules."""

from __future__ import annotations

import pytest

from bot.events import MODELS
from bot.handlers import HANDLED_EVENTS, ROUTES, Route, Router, installation, issues, pulls
from bot.signals import Identity


def test_each_route_takes_the_model_its_event_parses_into() -> None:
    for route in ROUTES:
        assert route.model is MODELS[route.event], route


def test_an_action_routed_alone_wins_over_the_events_catch_all() -> None:
    router = Router(ROUTES, Identity())
    found = router.route("issues", "labeled")
    assert found is not None
    assert found.handler is issues.on_issues_labeled
    found = router.route("issues", "closed")
    assert found is not None
    assert found.handler is issues.on_issues
    found = router.route("installation", "deleted")
    assert found is not None
    assert found.handler is installation.on_installation_deleted
    found = router.route("check_suite", "completed")
    assert found is not None
    assert found.handler is pulls.on_check_suite
    assert router.route("star", "created") is None


def test_the_subscribed_events_are_the_routed_ones_less_those_every_app_gets() -> None:
    router = Router(ROUTES, Identity())
    assert router.events == HANDLED_EVENTS | {"installation", "installation_repositories"}


def test_two_handlers_for_one_event_and_action_are_refused() -> None:
    twice = (ROUTES[0], Route(ROUTES[0].event, ROUTES[0].action, ROUTES[0].model, pulls.on_status))
    with pytest.raises(ValueError, match="two handlers"):
        Router(twice, Identity())
