"""The test harness itself: the App it registers is app.yml's, and its wait is woken, not slept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from fakehub.server import FakeHub
from tests.harness import (
    ROOT,
    Receiver,
    WaitTimeout,
    app_manifest,
    build_world,
    hub_changes,
    wait_until,
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    with FakeHub(tmp_path / "hub") as fake:
        yield fake


def test_the_app_is_registered_with_app_yml_events_and_permissions(
    hub: FakeHub, tmp_path: Path
) -> None:
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    world = build_world(hub, tmp_path)
    assert world.app.events == manifest["default_events"]
    assert world.app.permissions == manifest["default_permissions"]
    assert app_manifest() == (manifest["default_events"], manifest["default_permissions"])
    with world.client() as app:  # the App's installation reads the repository it is on
        assert app.get(f"/repos/{world.repo.full_name}").status_code == 200


def test_fakehub_tests_may_subscribe_to_more_than_the_app(hub: FakeHub, tmp_path: Path) -> None:
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    extra = build_world(
        hub,
        tmp_path,
        maintainer="mona",
        repo="octo/demo",
        extra_events=("issue_comment",),
        permissions={"statuses": "write"},
    )
    assert extra.repo.full_name == "octo/demo"
    assert extra.maintainer.login == "mona"
    assert extra.app.events == [*manifest["default_events"], "issue_comment"]
    assert extra.app.permissions["statuses"] == "write"


def test_a_wait_on_fakehub_is_woken_by_the_event_it_waits_for(hub: FakeHub) -> None:
    changes = hub_changes(hub)
    seen = changes.count()
    timer = threading.Timer(0.05, lambda: hub.state.record("nudge"))
    timer.start()
    started = time.monotonic()
    changes.wait(seen, timeout=30)  # no poll inside: only the record can end it early
    assert time.monotonic() - started < 10
    assert changes.count() == seen + 1
    timer.join()
    event = wait_until(lambda: hub.events("nudge"), 5, "the nudge", woken_by=changes)
    assert [e["type"] for e in event] == ["nudge"]
    nudges = hub_changes(hub, "nudge")
    hub.state.record("other")
    assert (nudges.count(), changes.count()) == (1, seen + 2), "only nudges count for nudges"


def test_a_wait_that_times_out_says_what_it_waited_for() -> None:
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.2 s waiting for the moon"):
        wait_until(lambda: False, 0.2, "the moon")


def test_the_receiver_wakes_its_waiters_per_delivery() -> None:
    receiver = Receiver()
    try:
        timer = threading.Timer(
            0.05,
            lambda: httpx.post(receiver.url, content=b"{}", headers={"X-GitHub-Event": "ping"}),
        )
        timer.start()
        hook = receiver.wait_for(lambda h: h.event == "ping", timeout=30)
        timer.join()
        assert hook.payload == {}
        assert [h.event for h in receiver.of("ping")] == ["ping"]
    finally:
        receiver.close()
