"""git for tests: no global configuration, HTTP credentials per call."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


def git(cwd: Path, *args: str, token: str | None = None, login: str = "x-access-token") -> str:
    """Run git in ``cwd`` as "Agent", over HTTP as ``login`` with ``token``; its stdout."""
    env = {"GIT_TERMINAL_PROMPT": "0", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env["HOME"] = str(cwd)
    cmd = ["git", "-c", "user.name=Agent", "-c", "user.email=agent@example.com"]
    if token:
        basic = base64.b64encode(f"{login}:{token}".encode()).decode()
        cmd += ["-c", f"http.extraHeader=Authorization: Basic {basic}"]
    proc = subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr}"
    return proc.stdout


def write_files(checkout: Path, files: Mapping[str, str]) -> None:
    for path, text in files.items():
        target = checkout / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
