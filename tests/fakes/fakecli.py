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


def load_scenario(cli: str, prompt: str, scenarios: Path, default: str = "success") -> list[dict]:
    """Steps from ``$FAKE_<CLI>_SCENARIO`` (a name or a path), else a ``[[fake:NAME]]`` marker."""
    chosen = os.environ.get(f"FAKE_{cli.upper()}_SCENARIO")
    if not chosen:
        marker = re.search(r"\[\[fake:([A-Za-z0-9_\-]+)\]\]", prompt)
        chosen = marker.group(1) if marker else default
    path = Path(chosen) if Path(chosen).is_file() else scenarios / f"{chosen}.json"
    data = json.loads(path.read_text())
    return data["steps"] if isinstance(data, dict) else data


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
