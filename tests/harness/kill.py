"""SIGKILL for the pipeline's processes, as a crash or a power cut would stop them.

The runner runs in its own session (``Pipeline(runner_session=True)``) and its agents in sessions
of their own (``runner/process.py``), so killing the runner's process group orphans them; a
machine that went down would have lost them too, so :func:`kill_runner_and_orphans` kills every
process still working in the runner's work dir.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from demo.pipeline import Pipeline
from tests.harness.waiting import wait_until


def pids_working_in(root: Path) -> list[int]:
    """Live processes whose current directory is inside ``root`` (agents, git, tests)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cwd.is_relative_to(root):
            found.append(int(entry.name))
    return found


def kill_runner_and_orphans(pipe: Pipeline) -> int:
    """SIGKILL the runner's process group, then every process still working in its work dir.

    Returns how many such orphans there were (agents run in their own sessions).
    """
    proc = pipe.runner_proc
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    root = (pipe.work / "runner").resolve()
    orphans = pids_working_in(root)
    for pid in orphans:
        try:
            pgid = os.getpgid(pid)
            if pgid != os.getpgrp():
                os.killpg(pgid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not pids_working_in(root), 10, "no process left in the runner's work dir")
    return len(orphans)


def kill_bot(pipe: Pipeline) -> None:
    """SIGKILL the (first) bot process: no shutdown, no last write."""
    proc = pipe.procs[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
