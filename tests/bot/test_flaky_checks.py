"""A red required check is re-run once before the task fails (issue 13, section 2).

Through fakehub's webhooks and its real CI: a check that fails once and passes on its re-run is
recorded as flaky and the pull request merges; a check red twice fails the task and is never
merged, and a restarted bot does not re-run it again on the same head.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import InProcessBot, World, flaky_ci, open_world, wait_until

pytestmark = pytest.mark.slow


def _flaky_metric(world: World) -> float:
    page = httpx.get(f"{world.bot_url}/metrics", timeout=10).text
    (line,) = [x for x in page.splitlines() if x.startswith("stoneforge_flaky_checks_total")]
    return float(line.split()[-1])


def _open_pull(world: World, title: str) -> dict[str, Any]:
    issue = world.file(title)
    world.label(issue["number"])
    job = wait_until(lambda: world.claim(wait_s=1), what="the task to be handed out")
    world.work(job, {"work.txt": f"{title}\n"})
    return issue


def _rerequests(world: World) -> list[dict[str, Any]]:
    return world.hub.events("check_rerequested")


def test_a_flaky_check_is_re_run_once_then_the_pull_request_merges(tmp_path: Path) -> None:
    ci = flaky_ci(tmp_path / "marks", fails=1)
    with open_world(tmp_path, bot=True, ci_command=ci, required=["ci"]) as world:
        issue = _open_pull(world, "Flaky once")
        number = issue["number"]
        world.wait_until(
            lambda: world.tasks()[number]["state"] == "merged", what="merged after the re-run"
        )
        pr = world.tasks()[number]["pr"]
        (merge,) = [e for e in world.hub.events("merge") if e["pr"] == pr]
        assert merge["checks"]["ci"] == "success"
        (asked,) = _rerequests(world)
        conclusions = [
            e["conclusion"]
            for e in world.hub.events("check_completed")
            if e["sha"] == asked["sha"] and e["name"] == "ci"  # not the steward's own check
        ]
        assert conclusions == ["failure", "success"]
        flake = [c for c in world.comments(pr) if "recorded as flaky" in c]
        assert len(flake) == 1
        assert "`ci`" in flake[0]
        assert _flaky_metric(world) == 1


def test_a_check_red_twice_fails_the_task_and_a_restarted_bot_does_not_re_run_it(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    ci = flaky_ci(tmp_path / "marks", fails=2, gate=gate)
    with open_world(tmp_path, bot=True, ci_command=ci, required=["ci"]) as world:
        assert world.bot is not None
        repos = world.bot.app.state.bot.repos
        # no fix rounds: red after its re-run fails at once (tests/bot/test_fix_checks.py)
        world.push_main({".github/stoneforge.yml": "version: 1\nsteward:\n  fix_attempts: 0\n"})
        world.wait_until(
            lambda: repos.config(world.repo.full_name).steward.fix_attempts == 0,
            what="the configuration loaded",
        )
        issue = _open_pull(world, "Red twice")
        number = issue["number"]
        world.wait_until(lambda: _rerequests(world) or None, what="the red check re-run")
        # Restart the bot while the re-run is still running: the new one remembers it.
        assert world.bot is not None
        settings, database = world.bot.app.state.bot.settings, world.bot.database
        world.bot.stop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        world.hub.set_webhook_url(world.app.id, f"http://127.0.0.1:{port}/webhooks/github")
        world.bot = InProcessBot.start(sock, settings, database)
        gate.touch()
        world.wait_until(lambda: world.tasks()[number]["state"] == "failed", what="the task failed")
        task = world.tasks()[number]
        assert "twice" in (task["detail"] or "")
        world.quiet(quiet_s=2)
        assert len(_rerequests(world)) == 1, "one re-run per head, across a restart"
        assert world.hub.events("merge") == []
        assert not [c for c in world.comments(task["pr"]) if "flaky" in c]
