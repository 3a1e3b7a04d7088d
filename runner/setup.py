"""The repository's setup command, run in a fresh worktree before the agent starts.

``/bin/sh -c`` under the runner's process supervisor (``runner.process.run_command``: its own
process group, a wall-clock and a no-output timeout, a cancel flag, output capped to its head and
tail), with an environment without the job token (plain or as a Basic auth header).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from runner.process import CommandResult, Flag, run_command

log = logging.getLogger(__name__)

KILL_GRACE_S = 2.0
SETUP_ENV_BASICS = ("PATH", "LANG", "LC_ALL", "HOME")

SetupResult = CommandResult  # a setup command's result is a command's result


def run_setup(
    command: str,
    cwd: Path,
    *,
    env: Mapping[str, str] | None,
    timeout_s: float,
    secrets: tuple[str, ...] = (),
    stall_timeout_s: float | None = None,
    cancel: Flag | None = None,
    pid_dir: Path | None = None,
) -> SetupResult:
    """Run ``command`` with ``/bin/sh -c`` in its own process group (``runner.process``).

    Blocking: it runs the supervisor on an event loop of its own, for a caller in a worker
    thread (``Workspaces.prepare``); `cancel` may be an ``asyncio.Event`` of another loop (it is
    polled). ``env`` is used as given, minus any variable whose value carries one of ``secrets``
    (plain or as a Basic auth header). Without ``env``, only PATH, LANG, LC_ALL and HOME are
    passed. The secrets are masked in the output too; a killed command's output ends with why.
    """
    run = run_command(command, cwd, env=_setup_env(env, secrets), timeout_s=timeout_s,
                      stall_timeout_s=stall_timeout_s, kill_grace_s=KILL_GRACE_S, cancel=cancel,
                      pid_dir=pid_dir)  # fmt: skip
    result = asyncio.run(run)
    output = result.output_tail
    for secret in _secret_forms(secrets):
        output = output.replace(secret, "***")
    if result.killed_by:
        why = result.killed_by.words(timeout_s=timeout_s, stall_timeout_s=stall_timeout_s)
        output += f"\n[setup command {why}; process group killed]"
    return dataclasses.replace(result, output_tail=output)


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
