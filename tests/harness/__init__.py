"""The one test harness: a :class:`World` built from ``app.yml``, and the one wait.

:class:`World` is fakehub with the App registered from ``app.yml`` (its ``default_events`` and
``default_permissions``), installed on one repository that a maintainer administers, plus the
parts a test asks for: the bot in this process (:func:`open_world` with ``bot=True``), bots as
processes (:meth:`World.start_bot`), a runner the test drives (:meth:`World.claim`,
:meth:`World.work`, :meth:`World.report`) and a webhook :class:`Receiver`.

:func:`wait_until` waits for a condition. It is woken by what the system signals (fakehub's
event log, a receiver's deliveries: :class:`Changes`) and polls, bounded, only for what nothing
signals (the bot's own store, another process's view); on timeout it says what it waited for.
"""

from tests.harness.bot import RUNNER_TOKEN, InProcessBot, free_port, healthy
from tests.harness.build import (
    CI,
    ROOT,
    SECRET,
    app_manifest,
    build_world,
    flaky_ci,
    open_world,
)
from tests.harness.git import git, write_files
from tests.harness.receiver import Hook, Receiver
from tests.harness.waiting import Changes, WaitTimeout, hub_changes, wait_until
from tests.harness.world import World

__all__ = [
    "CI",
    "ROOT",
    "RUNNER_TOKEN",
    "SECRET",
    "Changes",
    "Hook",
    "InProcessBot",
    "Receiver",
    "WaitTimeout",
    "World",
    "app_manifest",
    "build_world",
    "flaky_ci",
    "free_port",
    "healthy",
    "git",
    "hub_changes",
    "open_world",
    "wait_until",
    "write_files",
]
