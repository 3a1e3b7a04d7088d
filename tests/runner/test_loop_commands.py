"""A job's setup and test commands stop with the job: taken back by the bot, the runner shutting
down, or silent past the job's no-output timeout (runner.process supervises them as agents)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from runner.loop import SETUP_INTERRUPTED, Runner
from tests.harness.runner_bot import TOKEN, Bot, job, remote_branch
from tests.runner.test_loop import fake_agent as fake_agent  # a fixture, reused as it is
from tests.runner.test_loop import planned, worktree_dirs, write


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie awaiting its reaper counts as dead
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _sleeper(pidfile: Path) -> str:
    """A command that starts a grandchild in its group, records its pid, and waits silently."""
    return f"sleep 60 & echo $! > {pidfile}; echo running; wait"


async def _until(check: Any, task: asyncio.Task[None], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline
        assert not task.done()
        await asyncio.sleep(0.05)


async def test_a_job_taken_back_kills_its_running_test_command(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    pidfile = tmp_path / "test-command.pid"
    commands = {"setup": None, "test": _sleeper(pidfile)}
    fake.jobs = [planned(origin, 31, tmp_path / "prompts.txt", first=[write("x.txt", "x\n")],
                         retry=[], commands=commands)]  # fmt: skip
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", heartbeat_s=0.2,
                    claim_wait_s=1, on_event=events.append)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await _until(lambda: pidfile.is_file() and pidfile.read_text().strip(), task)
    grandchild = int(pidfile.read_text())
    fake.refuse["octo/demo#31@1"] = 410
    taken_back = time.monotonic()
    await _until(lambda: any(e["type"] == "job_cancelled" for e in events), task)
    assert time.monotonic() - taken_back < 10  # not the test command's 60 s
    stop.set()
    await asyncio.wait_for(task, 10)
    assert not _alive(grandchild), "the test command's process group was killed"
    assert fake.results == {}
    assert not remote_branch(origin, "stoneforge/31-task")
    assert not worktree_dirs(tmp_path / "work")


async def test_a_shutdown_during_setup_kills_it_and_hands_off_with_nothing_pushed(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    pidfile = tmp_path / "setup.pid"
    # The setup leaves a file behind: it must not be committed as the task's work.
    commands = {"setup": f"touch node_modules.txt; {_sleeper(pidfile)}", "test": None}
    fake.jobs = [job(origin, 32, {"edits": [{"path": "x", "write": "x"}]}, commands=commands)]
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    heartbeat_s=0.2, shutdown_grace_s=0.3, on_event=events.append)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await _until(lambda: pidfile.is_file() and pidfile.read_text().strip(), task)
    grandchild = int(pidfile.read_text())
    stopped = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 15)
    assert time.monotonic() - stopped < 8  # not the setup's 60 s
    assert not _alive(grandchild)
    result = fake.results["octo/demo#32@1"]
    assert (result["outcome"], result["reason"]) == ("handoff", "runner_shutdown"), result
    assert (result["head_sha"], result["note"]) == (None, SETUP_INTERRUPTED)
    assert not remote_branch(origin, "stoneforge/32-task")
    assert not [e for e in events if e["type"] == "agent_finished"]


async def test_a_silent_test_command_fails_the_try_past_the_no_output_timeout(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    pidfile = tmp_path / "test-command.pid"
    commands = {"setup": None, "test": _sleeper(pidfile)}
    timeouts = {"stall_s": 0.5, "test_s": 60}
    fake.jobs = [planned(origin, 33, tmp_path / "prompts.txt", first=[write("x.txt", "x\n")],
                         retry=[write("y.txt", "y\n")], commands=commands,
                         timeouts=timeouts)]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await _until(lambda: "octo/demo#33@1" in fake.results, task, within_s=30)
    stop.set()
    await asyncio.wait_for(task, 10)
    result = fake.results["octo/demo#33@1"]
    assert (result["outcome"], result["reason"]) == ("failed", "tests_failed"), result
    assert "failed (printed nothing for 0.5s)" in result["detail"]
    assert "running" in result["detail"]  # what it printed before it went silent
    assert not _alive(int(pidfile.read_text()))


async def test_a_cancelled_runner_task_kills_the_setup_command_in_its_worker_thread(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    # As an agent's group is killed when its task is cancelled (runner.process), so is a setup
    # command's, though it runs in a worker thread the cancellation does not reach.
    fake, url = bot
    pidfile = tmp_path / "setup.pid"
    commands = {"setup": _sleeper(pidfile), "test": None}
    fake.jobs = [job(origin, 34, {"edits": [{"path": "x", "write": "x"}]}, commands=commands)]
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    task = asyncio.create_task(runner.run(asyncio.Event()))
    await _until(lambda: pidfile.is_file() and pidfile.read_text().strip(), task)
    grandchild = int(pidfile.read_text())
    task.cancel()
    cancelled = time.monotonic()
    deadline = cancelled + 8  # not the setup's 60 s
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the setup command outlived its cancelled job"
        await asyncio.sleep(0.05)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
