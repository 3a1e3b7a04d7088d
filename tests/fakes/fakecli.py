"""What every fake agent CLI shares: scenario selection and the generic scenario steps.

The fakes are run as scripts, so their own directory is on ``sys.path`` and they import this
module directly. Standard library only, like the fakes.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


def load_scenario(
    cli: str,
    prompt: str,
    scenarios: Path,
    default: str = "success",
    *,
    session: dict | None = None,
) -> list[dict]:
    """Steps from ``$FAKE_<CLI>_SCENARIO`` (a name or a path), else a ``[[fake:NAME]]`` marker.

    ``session`` is the fake's saved state of the session it runs in. A resumed session (one
    with ``runs`` saved) whose prompt names no scenario plays its first run's scenario again,
    and plays that scenario's ``"resumed"`` steps when it has them instead of its ``"steps"``.
    """
    chosen = os.environ.get(f"FAKE_{cli.upper()}_SCENARIO")
    if not chosen:
        marker = re.search(r"\[\[fake:([A-Za-z0-9_\-]+)\]\]", prompt)
        remembered = (session or {}).get("scenario")
        chosen = marker.group(1) if marker else remembered or default
    if session is not None:
        session["scenario"] = chosen
    path = Path(chosen) if Path(chosen).is_file() else scenarios / f"{chosen}.json"
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        return data
    if session and session.get("runs") and "resumed" in data:
        return data["resumed"]
    return data["steps"]


def load_session(path: Path) -> dict | None:
    """The saved state of a session (None when there is none, as for an unknown id)."""
    return json.loads(path.read_text()) if path.is_file() else None


def project_key(cwd: str) -> str:
    """A folder name for one working directory (the CLIs keep sessions per project)."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


def save_session(path: Path, state: dict) -> None:
    state["runs"] = int(state.get("runs", 0)) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))


def record_call(variable: str, argv: list[str], prompt: str) -> None:
    """Append this invocation (argv and prompt) as one JSON line to the file ``$variable`` names."""
    if log := os.environ.get(variable):
        with Path(log).open("a") as fh:
            fh.write(json.dumps({"argv": argv, "prompt": prompt}) + "\n")


def common_step(step: dict) -> int | None:
    """Run a step every fake understands; an ``exit`` step returns the exit code."""
    if "raw" in step:
        sys.stdout.write(step["raw"] + "\n")
        sys.stdout.flush()
    elif "raw_partial" in step:
        sys.stdout.write(step["raw_partial"])
        sys.stdout.flush()
    elif "stderr" in step:
        print(step["stderr"], file=sys.stderr, flush=True)
    elif "sleep" in step:
        time.sleep(step["sleep"])
    elif step.get("hang"):
        while True:
            time.sleep(3600)
    elif "write_file" in step:
        target = Path(step["write_file"]["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(step["write_file"]["content"])
    elif "dump_env" in step:
        Path(step["dump_env"]).write_text(json.dumps(dict(os.environ)))
    elif "exit" in step:
        return int(step["exit"])
    return None
