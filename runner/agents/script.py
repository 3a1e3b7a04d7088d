"""Adapter for the deterministic demo agent (`runner.agents.script_agent`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from runner.agents.base import AgentEvent, Invocation, Outcome, ProbeInfo, RunRequest
from runner.agents.parsing import Signals, StreamParser

SLEEP_SCALE_ENV = "STONEFORGE_SCRIPT_SLEEP_SCALE"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class ScriptAdapter:
    name = "script"
    provider: str | None = None  # whose price list prices its tokens (pricing.py)
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


class ScriptStreamParser(StreamParser):
    """The demo agent's JSON lines; its `result` line declares the outcome (rule 2 of
    runner.agents.parsing): an empty summary still completes."""

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.edits: list[str] = []

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
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

    def signals(self, exit_code: int | None) -> Signals:
        res = self.result or {}
        if res.get("status") == "success" and exit_code == 0:
            summary = res.get("summary")
            text = summary if isinstance(summary, str) else ""
            return Signals(final_text=text, declared=(Outcome.COMPLETED, "success"))
        if res.get("status") == "error":
            return Signals(declared=(Outcome.FAILED, "script_error"))
        return Signals()

    def detail_parts(self) -> list[str]:
        res = self.result or {}
        if res.get("status") == "error":
            return [str(res.get("message") or "script failed")]
        return [f"exit code {self.exit_code}, no result line"]
