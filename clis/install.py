#!/usr/bin/env python3
"""Install the pinned agent CLIs that the conformance tests run (stdlib only; idempotent).

    python3 clis/install.py            # install what is missing or stale; exit 1 on any failure
    python3 clis/install.py --check    # only say what is installed

The npm CLIs (claude, codex, gemini, opencode, copilot) come from ``package.json`` and its
lockfile into ``clis/node_modules`` (with their install scripts: claude and opencode put their
native binary in place there); aider comes from ``aider-requirements.txt`` into a venv of its
own, ``clis/.aider-venv``.
A stamp beside each holds the hash of the files it was installed from, so a changed pin
reinstalls. Several processes may call this at once (pytest workers): a lock file serialises them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_BIN = HERE / "node_modules" / ".bin"
AIDER_VENV = HERE / ".aider-venv"
NPM_CLIS = ("claude", "codex", "gemini", "opencode", "copilot")
STATUS = HERE / ".install-status.json"


def binaries() -> dict[str, Path]:
    """Where each pinned CLI lives once installed (whether or not it is there now)."""
    found = {name: NODE_BIN / name for name in NPM_CLIS}
    found["aider"] = AIDER_VENV / "bin" / "aider"
    return found


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for file in files:
        h.update(file.read_bytes())
    return h.hexdigest()


def _fresh(stamp: Path, digest: str, *outputs: Path) -> bool:
    return stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in outputs)


def _npm() -> str | None:
    digest = _digest(HERE / "package.json", HERE / "package-lock.json")
    stamp = HERE / "node_modules" / ".stoneforge-stamp"
    if _fresh(stamp, digest, *(NODE_BIN / n for n in NPM_CLIS)):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found: install Node.js 20+ (with npm) to run the npm agent CLIs"
    # `npm install` honours the lockfile (`npm ci` refuses it: npm 11 leaves other platforms'
    # optional packages out of the lock and then calls it out of sync).
    cmd = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"npm ci failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}"
    stamp.write_text(digest)
    return None


def _aider() -> str | None:
    requirements = HERE / "aider-requirements.txt"
    digest = _digest(requirements)
    stamp = AIDER_VENV / ".stoneforge-stamp"
    if _fresh(stamp, digest, AIDER_VENV / "bin" / "aider"):
        return None
    shutil.rmtree(AIDER_VENV, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(AIDER_VENV)
    pip = [str(AIDER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", "-r", str(requirements)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"pip install aider failed ({done.returncode}): {done.stderr[-1500:]}"
    stamp.write_text(digest)
    return None


def install() -> dict[str, str]:
    """Install what is missing; return {cli: why it is unavailable} (empty when all are there).

    The answer is also written to ``.install-status.json`` for the test session to read."""
    HERE.mkdir(exist_ok=True)
    with open(HERE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problems: dict[str, str] = {}
        npm_error = _npm()
        if npm_error:
            problems.update({name: npm_error for name in NPM_CLIS})
        aider_error = _aider()
        if aider_error:
            problems["aider"] = aider_error
        for name, path in binaries().items():
            if name not in problems and not os.access(path, os.X_OK):
                problems[name] = f"{path} missing after install"
        STATUS.write_text(json.dumps(problems, indent=2))
        return problems


def main(argv: list[str]) -> int:
    if "--check" in argv:
        for name, path in binaries().items():
            print(f"{name:9} {'ok' if os.access(path, os.X_OK) else 'missing'}  {path}")
        return 0
    problems = install()
    for name, path in binaries().items():
        print(f"{name:9} {'FAILED' if name in problems else 'ok':6}  {path}")
    for why in dict.fromkeys(problems.values()):
        print(why, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
