"""Setup and test commands under the runner's one supervisor (runner.process): the same cancel,
no-output and group-kill semantics as agents, and output kept to its head and tail."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from runner.job import run_shell
from runner.process import (
    HEAD_BYTES,
    TAIL_BYTES,
    CappedOutput,
    CommandResult,
    reap_orphans,
    run_command,
)
from runner.setup import run_setup

ENV = {"PATH": os.environ["PATH"]}
# A command that starts a grandchild in its group (a backgrounded sleep), records its pid, says
# so, and then waits silently.
SPAWNS_GRANDCHILD = "sleep 60 & echo $! > grandchild.pid; echo up; wait"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie awaiting its reaper counts as dead
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _gone_soon(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def _pid(path: Path) -> int | None:
    """The pid a command wrote to `path`, once it has."""
    text = path.read_text().strip() if path.is_file() else ""
    return int(text) if text else None


async def _wait_for(path: Path, within_s: float = 10.0) -> int:
    # Polled: only the command's shell knows when it wrote the file.
    deadline = time.monotonic() + within_s
    while (pid := _pid(path)) is None:
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)
    return pid


async def test_cancel_kills_the_command_and_its_grandchild(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    task = asyncio.create_task(
        run_command(
            SPAWNS_GRANDCHILD, tmp_path, env=ENV, timeout_s=60, cancel=cancel, kill_grace_s=1
        )  # fmt: skip
    )
    grandchild = await _wait_for(tmp_path / "grandchild.pid")
    started = time.monotonic()
    cancel.set()
    result = await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 3
    assert (result.killed_by, result.exit_code, result.ok, result.timed_out) == (
        "cancelled",
        None,
        False,
        False,
    )
    assert "up" in result.output_tail
    assert _gone_soon(grandchild), "the grandchild in the command's group was killed too"


async def test_no_output_timeout_kills_a_silent_command(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await run_command(SPAWNS_GRANDCHILD, tmp_path, env=ENV, timeout_s=60,
                               stall_timeout_s=0.5, kill_grace_s=1)  # fmt: skip
    assert time.monotonic() - started < 5
    assert (result.killed_by, result.exit_code, result.timed_out) == ("stalled", None, True)
    assert _gone_soon(int((tmp_path / "grandchild.pid").read_text()))


async def test_output_resets_the_no_output_timer(tmp_path: Path) -> None:
    # 1.5 s of work printing every 0.1 s, with a 0.5 s no-output timeout: never silent that long.
    chatty = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do echo $i; sleep 0.1; done"
    result = await run_command(chatty, tmp_path, env=ENV, timeout_s=30, stall_timeout_s=0.5)
    assert (result.ok, result.killed_by, result.exit_code) == (True, None, 0)
    assert result.output_tail.split() == [str(i) for i in range(1, 16)]


async def test_wall_clock_timeout_and_exit_codes(tmp_path: Path) -> None:
    result = await run_command("echo out; echo err >&2; exit 4", tmp_path, env=ENV, timeout_s=10)
    assert (result.ok, result.exit_code, result.killed_by) == (False, 4, None)
    assert result.output_tail == "out\nerr\n"  # stderr merged into stdout, in order
    chatty_forever = "while true; do echo tick; sleep 0.05; done"
    result = await run_command(chatty_forever, tmp_path, env=ENV, timeout_s=0.5,
                               stall_timeout_s=5, kill_grace_s=1)  # fmt: skip
    assert (result.killed_by, result.exit_code, result.timed_out) == ("timeout", None, True)


async def test_a_background_child_holding_the_pipe_does_not_hang(tmp_path: Path) -> None:
    started = time.monotonic()
    command = "sleep 60 & echo $! > grandchild.pid; echo bye"
    result = await run_command(command, tmp_path, env=ENV, timeout_s=60)
    assert time.monotonic() - started < 6
    assert (result.ok, result.output_tail) == (True, "bye\n")
    assert _gone_soon(int((tmp_path / "grandchild.pid").read_text()))


async def test_fifty_megabytes_of_output_keep_head_and_tail_in_bounded_memory(
    tmp_path: Path,
) -> None:
    lines = 3_100_000  # of 17 bytes: 52.7 MB
    command = f"echo FIRST-LINE; yes 0123456789abcdef | head -n {lines}; echo LAST-LINE"
    tracemalloc.start()
    try:
        result = await run_command(command, tmp_path, env=ENV, timeout_s=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while 50 MB went through"
    out = result.output_tail
    assert out.startswith("FIRST-LINE\n0123456789abcdef\n")
    assert out.endswith("0123456789abcdef\nLAST-LINE\n")
    total = len("FIRST-LINE\n") + 17 * lines + len("LAST-LINE\n")
    dropped = total - HEAD_BYTES - TAIL_BYTES
    assert f"\n[... {dropped} bytes of output dropped ...]\n" in out
    assert len(out) < HEAD_BYTES + TAIL_BYTES + 100


def test_capped_output_never_holds_more_than_its_caps() -> None:
    capped = CappedOutput(head=10, tail=20)
    capped.feed(b"0123456789ab")  # fills the head, starts the tail
    assert capped.text() == "0123456789ab"  # nothing dropped yet: no marker
    for _ in range(1000):
        capped.feed(b"x" * 7)
        assert len(capped._head) == 10
        assert len(capped._tail) <= 20
    capped.feed(b"THE-END")
    assert (capped.total, capped.dropped) == (12 + 7000 + 7, 12 + 7000 + 7 - 30)
    assert capped.text() == f"0123456789\n[... {capped.dropped} bytes of output dropped ...]\n" + (
        "x" * 13 + "THE-END"
    )


async def test_the_group_is_recorded_while_it_runs_for_the_orphan_reaper(tmp_path: Path) -> None:
    pid_dir = tmp_path / "agents"
    cancel = asyncio.Event()
    task = asyncio.create_task(
        run_command(
            SPAWNS_GRANDCHILD,
            tmp_path,
            env=ENV,
            timeout_s=60,
            cancel=cancel,
            pid_dir=pid_dir,
            kill_grace_s=1,
        )  # fmt: skip
    )
    await _wait_for(tmp_path / "grandchild.pid")
    # The group is recorded just after the spawn returns, which under load can be after the
    # command's grandchild already wrote its file: wait for the record, bounded.
    deadline = time.monotonic() + 10
    while not (pid_dir.is_dir() and any(pid_dir.iterdir())):
        assert time.monotonic() < deadline, "the process group was never recorded"
        await asyncio.sleep(0.02)
    [entry] = list(pid_dir.iterdir())
    assert entry.read_text() == str(tmp_path)
    cancel.set()
    await asyncio.wait_for(task, 10)
    assert list(pid_dir.iterdir()) == []  # a clean end leaves no pid file
    assert reap_orphans(pid_dir) == []


async def test_a_shell_that_cannot_start_is_a_failed_result(tmp_path: Path) -> None:
    result = await run_command("true", tmp_path / "missing", env=ENV, timeout_s=5)
    assert (result.ok, result.exit_code, result.killed_by) == (False, None, None)
    assert "could not start" in result.output_tail


async def test_the_test_command_runs_with_a_private_home_and_stops_on_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STONEFORGE_RUNNER_TOKEN", "decoy-runner-token")
    ok = await run_shell("env; echo fine", tmp_path, 10, asyncio.Event())
    assert ok.ok
    assert "decoy-runner-token" not in ok.output_tail
    assert f"HOME={Path.home()}\n" not in ok.output_tail
    assert "HOME=" in ok.output_tail

    cancel = asyncio.Event()
    task = asyncio.create_task(run_shell(SPAWNS_GRANDCHILD, tmp_path, 60, cancel))
    grandchild = await _wait_for(tmp_path / "grandchild.pid")
    cancel.set()
    result: CommandResult = await asyncio.wait_for(task, 10)
    assert result.killed_by == "cancelled"
    assert _gone_soon(grandchild)


async def test_setup_in_a_worker_thread_stops_when_the_loops_event_is_set(tmp_path: Path) -> None:
    # As the runner runs it: Workspaces.prepare in a thread, cancelled by the job's asyncio.Event.
    cancel = asyncio.Event()
    task = asyncio.create_task(
        asyncio.to_thread(
            run_setup, SPAWNS_GRANDCHILD, tmp_path, env=ENV, timeout_s=60, cancel=cancel
        )  # fmt: skip
    )
    grandchild = await _wait_for(tmp_path / "grandchild.pid")
    started = time.monotonic()
    cancel.set()
    result = await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 4
    assert (result.ok, result.killed_by, result.exit_code) == (False, "cancelled", None)
    assert result.output_tail.endswith("[setup command was cancelled; process group killed]")
    assert _gone_soon(grandchild)


def test_setup_killed_by_the_no_output_timeout(tmp_path: Path) -> None:
    cancel = threading.Event()  # never set; a thread's own flag works as well
    started = time.monotonic()
    result = run_setup(SPAWNS_GRANDCHILD, tmp_path, env=ENV, timeout_s=60, stall_timeout_s=0.5,
                       cancel=cancel)  # fmt: skip
    assert time.monotonic() - started < 6
    assert (result.ok, result.killed_by, result.timed_out) == (False, "stalled", True)
    assert result.output_tail.startswith("up\n")
    assert result.output_tail.endswith("[setup command printed nothing for 0.5s; process group "
                                       "killed]")  # fmt: skip
    assert _gone_soon(int((tmp_path / "grandchild.pid").read_text()))
