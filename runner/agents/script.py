"""Adapter for the deterministic demo agent (`runner.agents.script_agent`)."""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any

from runner.agents.base import AgentEvent, Invocation, Outcome, ProbeInfo, Result, RunRequest

SLEEP_SCALE_ENV = "STONEFORGE_SCRIPT_SLEEP_SCALE"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class ScriptAdapter:
    name = "script"
    supported_versions = "*"
    cumulative_usage = False
    credential_env: tuple[str, ...] = ()
    bin_env = None

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return ProbeInfo(version="1", flags=frozenset({"--sleep-scale"}))

    def build(self, req: RunRequest) -> Invocation:
        argv = [sys.executable, "-m", "runner.agents.script_agent"]
        scale = os.environ.get(SLEEP_SCALE_ENV)
        if scale:
            argv += ["--sleep-scale", str(float(scale))]
        # PYTHONSAFEPATH: never import a `runner` package from the worktree (cwd) instead of ours.
        env = {"PYTHONPATH": str(PACKAGE_ROOT), "PYTHONSAFEPATH": "1", **req.extra_env}
        return Invocation(argv=argv, env=env, cwd=req.workdir, stdin=req.prompt.encode())

    def new_parser(self) -> ScriptStreamParser:
        return ScriptStreamParser()

    def can_resume(self) -> bool:
        return False


class ScriptStreamParser:
    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None
        self.edits: list[str] = []
        self.stderr_tail: deque[str] = deque(maxlen=20)

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        try:
            msg = json.loads(line)
        except ValueError:
            return [AgentEvent("warning", {"message": "unparsed output line"}, line[:2000])]
        if not isinstance(msg, dict):
            return []
        kind = msg.get("type")
        if kind == "start":
            return [AgentEvent("session", {"session_id": None}, msg)]
        if kind == "edit":
            self.edits.append(str(msg.get("path")))
            data = {"name": "edit", "input": {"path": msg.get("path")}}
            return [AgentEvent("tool_call", data, msg)]
        if kind == "result":
            self.result = msg
            return [AgentEvent("text", {"text": msg.get("summary") or msg.get("message")}, msg)]
        return []

    def feed_stderr(self, line: str) -> list[AgentEvent]:
        if line.strip():
            self.stderr_tail.append(line[:2000])
        return []

    def liveness_hint(self) -> float | None:
        return None

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result:
        stderr = "\n".join(self.stderr_tail) or None
        if killed_by:
            return Result(Outcome.FAILED, killed_by, exit_code=exit_code, detail=stderr)
        res = self.result or {}
        if res.get("status") == "success" and exit_code == 0:
            summary = res.get("summary")
            return Result(
                Outcome.COMPLETED,
                "success",
                final_text=summary if isinstance(summary, str) else "",
                exit_code=exit_code,
            )
        if res.get("status") == "error":
            message = str(res.get("message") or "script failed")
            return Result(Outcome.FAILED, "script_error", exit_code=exit_code, detail=message)
        detail = f"exit code {exit_code}, no result line"
        if stderr:
            detail += f"\nstderr:\n{stderr}"
        return Result(Outcome.FAILED, "crash", exit_code=exit_code, detail=detail)
