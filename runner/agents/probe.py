"""Version probing for agent CLIs (research/agent-clis.md §7.9).

`probe_version` runs `<binary> --version` with a short timeout, pulls the first dotted version out
of what it prints and checks it against the adapter's `supported_versions` (a comma-separated list
of `>=`, `>`, `<=`, `<`, `==` clauses, or `*`). Problems raise `ProbeError` with a message meant
for the operator, e.g. "codex not found on PATH (set STONEFORGE_CODEX_BIN)".
"""

from __future__ import annotations

import operator
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping

from runner.agents.base import ProbeInfo

PROBE_TIMEOUT_S = 30.0  # opencode (node, then its own binary) can take 10 s and more to start
VERSION_RE = re.compile(r"\d+(?:\.\d+)+")
CLAUSE_RE = re.compile(r"^(>=|<=|==|>|<)\s*(\d+(?:\.\d+)*)$")
OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


class ProbeError(RuntimeError):
    """The agent CLI is missing, broken or of an unsupported version."""


def parse_version(text: str) -> str | None:
    """The first dotted version number in `text` ("codex-cli 0.171.0" -> "0.171.0")."""
    match = VERSION_RE.search(text)
    return match.group(0) if match else None


def _key(version: str, width: int) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (width - len(parts)))


def check_version(version: str, spec: str) -> str | None:
    """None when `version` satisfies `spec`; otherwise "older than" / "newer than" / "outside"."""
    if spec.strip() in ("", "*"):
        return None
    for clause in spec.split(","):
        match = CLAUSE_RE.match(clause.strip())
        if not match:
            raise ValueError(f"bad version clause {clause!r} in {spec!r}")
        op, bound = match.groups()
        width = max(len(version.split(".")), len(bound.split(".")))
        if not OPS[op](_key(version, width), _key(bound, width)):
            if op in (">=", ">"):
                return "older than"
            return "newer than" if op in ("<=", "<") else "outside"
    return None


def probe_version(
    cli: str,
    binary: str,
    *,
    env_var: str,
    supported: str,
    timeout_s: float = PROBE_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> ProbeInfo:
    """Run `binary --version` (in `env`, by default the runner's); return its version or raise
    `ProbeError`."""
    resolved = shutil.which(binary)
    if resolved is None:
        raise ProbeError(f"{cli} not found on PATH (set {env_var})")
    try:
        proc = subprocess.run(
            [resolved, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{cli} --version did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise ProbeError(f"{cli} could not be started ({binary}): {exc}") from None
    output = (proc.stdout or "") + "\n" + (proc.stderr or "")
    version = parse_version(proc.stdout or "") or parse_version(output)
    if proc.returncode != 0 or version is None:
        tail = output.strip()[-300:] or f"exit code {proc.returncode}"
        raise ProbeError(f"{cli} --version failed ({binary}): {tail}")
    problem = check_version(version, supported)
    if problem:
        raise ProbeError(f"{cli} {version} is {problem} the supported {supported}")
    return ProbeInfo(version=version)
