"""The repository's setup command, run in a fresh worktree before the agent starts.

``/bin/sh -c`` in its own process group with a timeout that kills the whole group, an
environment without the job token (plain or as a Basic auth header), and output to an anonymous
file so a background process holding the pipe cannot stall the runner.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OUTPUT_TAIL_CHARS = 4000
KILL_GRACE_S = 2.0
SETUP_ENV_BASICS = ("PATH", "LANG", "LC_ALL", "HOME")


@dataclass(frozen=True)
class SetupResult:
    ok: bool
    exit_code: int | None  # None when it timed out; negative when a signal ended it
    output_tail: str  # the end of stdout and stderr, interleaved
    seconds: float
    timed_out: bool


def run_setup(
    command: str,
    cwd: Path,
    *,
    env: Mapping[str, str] | None,
    timeout_s: float,
    secrets: tuple[str, ...] = (),
) -> SetupResult:
    """Run ``command`` with ``/bin/sh -c`` in its own process group; kill the group on timeout.

    ``env`` is used as given, minus any variable whose value carries one of ``secrets`` (plain
    or as a Basic auth header). Without ``env``, only PATH, LANG, LC_ALL and HOME are passed.
    Output goes to an anonymous temporary file, so a background process that keeps the pipe
    open cannot stall the runner.
    """
    run_env = _setup_env(env, secrets)
    started = time.monotonic()
    timed_out = False
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=cwd, env=run_env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out, code = True, None
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(proc.pid, signal.SIGKILL)  # whatever it left running in the background
        proc.wait()
        seconds = round(time.monotonic() - started, 3)
        out.seek(max(0, out.seek(0, os.SEEK_END) - 4 * OUTPUT_TAIL_CHARS))
        tail = out.read().decode(errors="replace")[-OUTPUT_TAIL_CHARS:]
    for secret in _secret_forms(secrets):
        tail = tail.replace(secret, "***")
    if timed_out:
        tail += f"\n[setup command timed out after {timeout_s:g}s; process group killed]"
    return SetupResult(
        ok=code == 0 and not timed_out,
        exit_code=code,
        output_tail=tail,
        seconds=seconds,
        timed_out=timed_out,
    )


def _setup_env(env: Mapping[str, str] | None, secrets: tuple[str, ...]) -> dict[str, str]:
    if env is None:
        return {k: os.environ[k] for k in SETUP_ENV_BASICS if k in os.environ}
    forms = _secret_forms(secrets)
    clean = {}
    for name, value in env.items():
        if any(form in value for form in forms):
            log.warning("setup_env_dropped variable=%s (carries a token)", name)
            continue
        clean[name] = value
    return clean


def _secret_forms(secrets: tuple[str, ...]) -> list[str]:
    forms = []
    for secret in secrets:
        if secret:
            forms.append(secret)
            forms.append(base64.b64encode(f"x-access-token:{secret}".encode()).decode())
    return forms


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
