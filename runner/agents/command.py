"""Any executable as an agent: `STONEFORGE_AGENT_COMMAND` (shlex-split, no shell).

The prompt goes on stdin and the command runs in the worktree. Exit 0 means completed, anything
else failed, unless the command prints a JSON line `{"type": "result", ...}`, which may set:

    outcome     completed | failed | handoff_needed | rate_limited (or status: success | error)
    reason      free text, e.g. "quota"
    summary     the final answer (also `result` / `text`)
    session_id  for logs
    usage       {"input_tokens", "output_tokens", "cost_usd"}
    retry_at    ISO 8601 time, for rate_limited

A non-zero exit always wins over a "completed" result line. Other stdout lines are kept as the
final text when no summary is given. Names in `STONEFORGE_AGENT_COMMAND_ENV` (comma-separated)
are copied from the runner's environment, and are the only secrets the command may receive.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections import deque
from datetime import UTC, datetime
from typing import Any

from runner.agents.base import AgentEvent, Invocation, Outcome, ProbeInfo, RunRequest, Usage
from runner.agents.parsing import (
    LINE_KEPT,
    Signals,
    StreamParser,
    as_dict,
    as_int,
    as_number,
    json_object,
)
from runner.agents.probe import ProbeError

COMMAND_ENV = "STONEFORGE_AGENT_COMMAND"
PASS_ENV = "STONEFORGE_AGENT_COMMAND_ENV"
STATUS = {"success": Outcome.COMPLETED, "error": Outcome.FAILED}


class CommandAdapter:
    name = "command"
    provider: str | None = None  # whose price list prices its tokens (pricing.py)
    supported_versions = "*"
    cumulative_usage = False
    bin_env = COMMAND_ENV

    @property
    def credential_env(self) -> tuple[str, ...]:
        return (PASS_ENV, *self.passed_env)

    def __init__(self, command: list[str] | str | None = None) -> None:
        raw = command if command is not None else os.environ.get(COMMAND_ENV, "")
        self.argv = shlex.split(raw) if isinstance(raw, str) else list(raw)
        if not self.argv:
            raise ValueError(f"agent 'command' needs {COMMAND_ENV} (an executable and arguments)")
        names = os.environ.get(PASS_ENV, "")
        self.passed_env = tuple(n.strip() for n in names.split(",") if n.strip())

    def probe(self, binary: str | None = None) -> ProbeInfo:
        executable = binary or self.argv[0]
        if shutil.which(executable) is None:
            raise ProbeError(f"{executable} not found on PATH (set {COMMAND_ENV})")
        return ProbeInfo(version=None)

    def build(self, req: RunRequest) -> Invocation:
        env = {name: os.environ[name] for name in self.passed_env if name in os.environ}
        env.update(req.extra_env)
        return Invocation(
            argv=list(self.argv),
            env=env,
            cwd=req.workdir,
            stdin=req.prompt.encode(),
            allowed_secrets=frozenset(self.passed_env),
        )

    def new_parser(self) -> CommandOutputParser:
        return CommandOutputParser()

    def can_resume(self) -> bool:
        return False


class CommandOutputParser(StreamParser):
    """Any text; a JSON result line declares the outcome (rule 2 of runner.agents.parsing)."""

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.text: deque[str] = deque(maxlen=200)

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        if not line.strip():
            return []
        msg = json_object(line)
        if msg is not None and msg.get("type") == "result":
            self.result = msg
            self.session_id = str(msg["session_id"]) if msg.get("session_id") else None
            self.usage = _usage(msg.get("usage"))
            return [AgentEvent("text", {"text": _summary(msg)}, msg)]
        self.text.append(line.rstrip())
        return [AgentEvent("text", {"text": line.rstrip()}, line[:LINE_KEPT])]

    def final_text(self) -> str | None:
        return _summary(self.result or {}) or "\n".join(self.text).strip() or None

    def signals(self, exit_code: int | None) -> Signals:
        """The exit code, refined by the result line: always a declared outcome."""
        res = self.result or {}
        outcome = _outcome(res, exit_code)
        reason = str(res.get("reason") or "")
        if outcome is Outcome.COMPLETED:
            reason = "success"
        elif outcome is Outcome.FAILED and (exit_code != 0 and not reason):
            reason = "crash"
        return Signals(
            final_text=self.final_text(),
            declared=(outcome, reason or outcome.value),
            retry_at=_time(res.get("retry_at")),
        )

    def detail_parts(self) -> list[str]:
        return [f"exit code {self.exit_code}", self.final_text() or ""]


def _outcome(res: dict[str, Any], exit_code: int | None) -> Outcome:
    declared: Outcome | None = None
    if isinstance(res.get("outcome"), str):
        try:
            declared = Outcome(res["outcome"])
        except ValueError:
            declared = None
    if declared is None and isinstance(res.get("status"), str):
        declared = STATUS.get(res["status"])
    if exit_code != 0:
        return declared if declared not in (None, Outcome.COMPLETED) else Outcome.FAILED
    return declared or Outcome.COMPLETED


def _summary(res: dict[str, Any]) -> str | None:
    for key in ("summary", "result", "text"):
        if isinstance(res.get(key), str) and res[key].strip():
            return str(res[key])
    return None


def _usage(value: object) -> Usage:
    raw = as_dict(value)
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        cost_usd=as_number(raw.get("cost_usd")),
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
