"""Simulated CI for fakehub: run a repository's command in a fresh checkout of one commit.

Each run gets its own directory under ``workdir`` (the checkout plus a scratch ``HOME`` and
``TMPDIR``), a minimal environment that inherits no secrets from the fakehub process, and its own
process group so a timeout kills everything the command started.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fakehub.gitstore import GitStore

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024


@dataclass
class CIResult:
    conclusion: Literal["success", "failure"]
    output: str
    seconds: float


def _tail(path: Path, limit: int = OUTPUT_LIMIT) -> str:
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - limit))
        return fh.read().decode(errors="replace")


def _kill_group(pgid: int) -> None:
    """Kill whatever the command left running in its process group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CIRunner:
    """Runs CI commands in a thread pool; results go to each submission's ``on_done``."""

    def __init__(self, store: GitStore, workdir: Path, *, max_workers: int = 2) -> None:
        self.store = store
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fakehub-ci")

    def submit(
        self,
        full_name: str,
        sha: str,
        command: list[str],
        on_done: Callable[[CIResult], None],
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> None:
        self._pool.submit(
            self._job, full_name, sha, list(command), on_done, dict(env or {}), timeout
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _job(
        self,
        full_name: str,
        sha: str,
        command: list[str],
        on_done: Callable[[CIResult], None],
        env: dict[str, str],
        timeout: float,
    ) -> None:
        started = time.monotonic()
        try:
            result = self._run(full_name, sha, command, env, timeout)
        except Exception as exc:  # a CI infrastructure error is a failed run, never a lost one
            log.exception("CI run for %s@%s crashed", full_name, sha)
            result = CIResult("failure", f"CI error: {type(exc).__name__}: {exc}\n", 0.0)
        result.seconds = round(time.monotonic() - started, 3)
        try:
            on_done(result)
        except Exception:
            log.exception("CI on_done callback failed for %s@%s", full_name, sha)

    def _run(
        self, full_name: str, sha: str, command: list[str], env: dict[str, str], timeout: float
    ) -> CIResult:
        run_dir = Path(tempfile.mkdtemp(prefix=f"{sha[:12]}-", dir=self.workdir))
        try:
            checkout, home, tmp = run_dir / "src", run_dir / "home", run_dir / "tmp"
            home.mkdir()
            tmp.mkdir()
            self.store.checkout(full_name, sha, checkout)
            run_env = {
                "PATH": os.environ.get("PATH", os.defpath),
                "HOME": str(home),
                "TMPDIR": str(tmp),
                "LANG": "C.UTF-8",
                "CI": "true",
                "GITHUB_REPOSITORY": full_name,
                "GITHUB_SHA": sha,
                **env,
            }
            log_path = run_dir / "output.log"
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    command,
                    cwd=checkout,
                    env=run_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait()
                    output = _tail(log_path, OUTPUT_LIMIT - 100)
                    return CIResult("failure", f"{output}\nCI timed out after {timeout:g} s\n", 0.0)
                finally:
                    _kill_group(proc.pid)
            conclusion: Literal["success", "failure"] = "success" if code == 0 else "failure"
            return CIResult(conclusion, _tail(log_path), 0.0)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
