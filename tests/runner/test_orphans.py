"""A runner restarted after SIGKILL stops the agents its predecessor left running."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from runner.process import _record_group, reap_orphans


def _spawn(cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"], cwd=cwd, start_new_session=True)


def test_recorded_groups_are_killed_and_others_left_alone(tmp_path: Path) -> None:
    work = tmp_path / "worktree"
    work.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pid_dir = tmp_path / "agents"
    orphan = _spawn(work)
    stranger = _spawn(elsewhere)
    try:
        _record_group(pid_dir, orphan.pid, work)
        _record_group(pid_dir, stranger.pid, work)  # pid reused by a process working elsewhere
        time.sleep(0.2)
        killed = reap_orphans(pid_dir)
        assert killed == [orphan.pid]
        assert orphan.wait(timeout=5) != 0
        assert stranger.poll() is None, "a process outside the recorded directory is not ours"
        assert list(pid_dir.iterdir()) == []
    finally:
        for proc in (orphan, stranger):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
