"""Fixtures for fakehub's API tests: a running FakeHub, a webhook receiver, and the harness's
World on an organization's repository (``octo/demo``, administered by "mona")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakehub.server import FakeHub
from tests.fakehub.openapi import Spec, load_spec
from tests.harness import Receiver, World, build_world

SECRET = "It's a Secret to Everybody"
ORG = "octo"
REPO = "demo"
FULL = f"{ORG}/{REPO}"
# fakehub's tests exercise more of GitHub than the App subscribes to (app.yml).
EXTRA_EVENTS = ("issue_comment",)
EXTRA_PERMISSIONS = {"statuses": "write"}


@pytest.fixture(scope="session")
def spec() -> Spec:
    return load_spec()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    h = FakeHub(tmp_path / "fakehub")
    h.start()
    yield h
    h.stop()


def make_world(
    hub: FakeHub,
    receiver: Receiver,
    tmp: Path,
    *,
    ci_command: list[str] | None = None,
    required: list[str] | None = None,
    strict: bool = True,
) -> World:
    """The App installed on ``octo/demo``, its webhooks going to ``receiver``."""
    world = build_world(
        hub,
        tmp,
        webhook_url=receiver.url,
        secret=SECRET,
        maintainer="mona",
        repo=FULL,
        files={"README.md": "# demo\n", "app/main.py": "print('hello')\n"},
        ci_command=ci_command,
        required=required,
        strict=strict,
        extra_events=EXTRA_EVENTS,
        permissions=EXTRA_PERMISSIONS,
    )
    world.receiver = receiver
    return world


@pytest.fixture
def world(hub: FakeHub, receiver: Receiver, tmp_path: Path) -> World:
    return make_world(hub, receiver, tmp_path)
