"""Building a world: the App registered from ``app.yml``, a repository, a maintainer, a bot."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from bot.settings import BotSettings
from fakehub.server import FakeHub
from tests.harness.bot import RUNNER_TOKEN, InProcessBot
from tests.harness.world import World

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pipeline-secret"
#: A repository's CI: red while a file named RED exists, green otherwise.
CI = [sys.executable, "-c", "import os, sys; sys.exit(1 if os.path.exists('RED') else 0)"]


def flaky_ci(markers: Path, *, fails: int = 1, gate: Path | None = None) -> list[str]:
    """A CI command that fails its first ``fails`` runs on each commit and passes after
    (counted in files under ``markers``): a flaky check, for re-run tests. With ``gate``, every
    run after the first holds until that file exists (the test opens it when it is ready)."""
    markers.mkdir(parents=True, exist_ok=True)
    hold = (
        ""
        if gate is None
        else (
            f"g = pathlib.Path({str(gate)!r}); t = time.monotonic() + 60\n"
            "while n and not g.exists() and time.monotonic() < t: time.sleep(0.05)\n"
        )
    )
    code = (
        "import os, pathlib, sys, time\n"
        f"m = pathlib.Path({str(markers)!r}) / os.environ['GITHUB_SHA']\n"
        "n = int(m.read_text()) if m.exists() else 0\nm.write_text(str(n + 1))\n"
        f"{hold}print('run', n + 1)\nsys.exit(1 if n < {fails} else 0)\n"
    )
    return [sys.executable, "-c", code]


def app_manifest() -> tuple[list[str], dict[str, str]]:
    """The events and permissions ``app.yml`` registers the App with."""
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    return list(manifest["default_events"]), dict(manifest["default_permissions"])


def build_world(
    hub: FakeHub,
    tmp: Path,
    *,
    webhook_url: str | None = None,
    secret: str = SECRET,
    maintainer: str = "lead",
    repo: str = "octo/app",
    files: Mapping[str, str] | None = None,
    ci_command: list[str] | None = None,
    required: list[str] | None = None,
    strict: bool = True,
    extra_events: tuple[str, ...] = (),
    permissions: Mapping[str, str] | None = None,
) -> World:
    """Register the App from ``app.yml`` on a running ``hub`` and install it on ``repo``.

    ``extra_events`` and ``permissions`` (merged over the manifest's) are for fakehub's own
    tests, which exercise more of GitHub than the App subscribes to.
    """
    owner, name = repo.split("/")
    events, granted = app_manifest()
    lead = hub.create_user(maintainer)
    hub.create_user(owner, type="Organization")
    app = hub.create_app(
        slug="stoneforge",
        webhook_url=webhook_url,
        webhook_secret=secret,
        events=[*events, *extra_events],
        permissions={**granted, **(permissions or {})},
    )
    serialization.load_pem_private_key(app.private_key_pem.encode(), password=None)  # real key
    created = hub.create_repo(
        owner,
        name,
        dict(files if files is not None else {"README.md": "hello\n"}),
        ci_command=ci_command,
        required_checks=required or [],
        strict=strict,
    )
    hub.set_permission(repo, maintainer, "admin")
    installation = hub.install_app(app.id, owner, [name])
    return World(hub, tmp, app, lead, created, installation, secret)


@contextlib.contextmanager
def open_world(
    tmp: Path,
    *,
    bot: bool = False,
    bot_env: Mapping[str, Any] | None = None,
    public_url: bool = False,
    **options: Any,
) -> Iterator[World]:
    """A fakehub of its own and a :func:`build_world` on it; with ``bot``, the bot in-process
    (SQLite in ``tmp``, runner token :data:`RUNNER_TOKEN`, ``bot_env`` as extra settings,
    ``public_url``: its own URL; ``ci_workers``: CI runs at once, default 2) receiving the
    App's webhooks. Everything stops on exit."""
    sock: socket.socket | None = None
    if bot:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        options["webhook_url"] = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/github"
    hub = FakeHub(tmp / "hub", ci_workers=int(options.pop("ci_workers", 2)))
    hub.start()
    try:
        world = build_world(hub, tmp, **options)
        try:
            if sock is not None:
                extra: dict[str, Any] = dict(bot_env or {})
                if public_url:
                    extra["public_url"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
                settings = BotSettings(
                    app_id=world.app.id,
                    private_key=world.app.private_key_pem,
                    webhook_secret=world.secret,
                    github_api_url=hub.api_url,
                    database_url=f"sqlite:///{tmp / 'bot.db'}",
                    runner_token=RUNNER_TOKEN,
                    default_agent="script",
                    steward_interval_s=0.5,
                    **extra,
                )
                world.bot = InProcessBot.start(sock, settings, tmp / "bot.db")
            yield world
        finally:
            world.close()
    finally:
        hub.stop()
        if sock is not None:
            sock.close()
