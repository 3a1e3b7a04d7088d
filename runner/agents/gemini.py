"""Gemini CLI, headless: `gemini -p "" --output-format stream-json --skip-trust` (agent-clis.md §5).

We use `stream-json` rather than `json`: it streams (the stall timer sees progress), carries the
session id up front, and still ends with one `result` event, also on fatal errors. The prompt goes
on stdin with `-p ""` (Gemini appends `-p` text to stdin), and `--skip-trust` because every fresh
worktree is an untrusted folder (exit 55 otherwise). Gemini has no system-prompt append flag, so
extra instructions are prepended to the prompt. It reports no cost.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from runner.agents.base import (
    AgentEvent,
    Invocation,
    Outcome,
    ProbeInfo,
    Result,
    RunRequest,
    Usage,
    killed_result,
)
from runner.agents.probe import probe_version

BIN_ENV = "STONEFORGE_GEMINI_BIN"
CREDENTIAL_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
PASSED_ENV = (
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_GCA",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GEMINI_BASE_URL",
)
APPROVAL = {"read_only": "plan", "workspace_write": "auto_edit", "full_unattended": "yolo"}
# Exit codes from packages/core/src/utils/errors.ts; 173 is a 429 passed to process.exit().
EXIT_AUTH, EXIT_INPUT, EXIT_TURN_LIMIT, EXIT_QUOTA = 41, 42, 53, 173
QUOTA_ERRORS = frozenset({"TerminalQuotaError", "RetryableQuotaError"})
RATE_LIMIT = re.compile(r"quota|rate.?limit|resource.?exhausted|\b429\b", re.IGNORECASE)
AUTH = re.compile(r"Please set an Auth method|authenticat|api key not valid", re.IGNORECASE)
CONTEXT = re.compile(r"context window will overflow|context.?window", re.IGNORECASE)
TURN_LIMIT = re.compile(r"maximum session turns", re.IGNORECASE)
# `--resume` of a session it cannot find: "Error resuming session: Invalid session identifier".
NO_SESSION = re.compile(r"invalid session identifier|error resuming session", re.IGNORECASE)
RETRY_IN = re.compile(r"retry in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


class GeminiAdapter:
    name = "gemini"
    credential_env = (*CREDENTIAL_ENV, *PASSED_ENV)
    bin_env = BIN_ENV
    supported_versions = ">=0.61,<1"
    cumulative_usage = False  # `--resume` does not restore the session's stats

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get(BIN_ENV, "gemini")

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return probe_version(
            "gemini", binary or self.binary, env_var=BIN_ENV, supported=self.supported_versions
        )

    def build(self, req: RunRequest) -> Invocation:
        argv = [self.binary, "-p", "", "--output-format", "stream-json", "--skip-trust"]
        argv += ["--approval-mode", APPROVAL[req.permissions]]
        if req.model:
            argv += ["-m", req.model]
        if req.resume_session:
            argv += ["--resume", req.resume_session]
        elif req.session_id:
            argv += ["--session-id", req.session_id]
        env = {n: os.environ[n] for n in (*CREDENTIAL_ENV, *PASSED_ENV) if os.environ.get(n)}
        env.update(req.extra_env)
        prompt = req.prompt
        if req.system_append:
            prompt = f"{req.system_append}\n\n{prompt}"
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=prompt.encode(),
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def new_parser(self) -> GeminiStreamParser:
        return GeminiStreamParser()

    def can_resume(self) -> bool:
        return True


class GeminiStreamParser:
    """Reads `--output-format stream-json` lines; `finish()` classifies."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.usage = Usage()
        self.result: dict[str, Any] | None = None
        self.answer: list[str] = []  # assistant text since the last tool call
        self.tool_calls = 0
        self.errors: list[str] = []  # `error` events (warnings and errors)
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.garbage = 0

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        line = line.strip()
        if not line:
            return []
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.garbage += 1
            return [AgentEvent("warning", {"message": "unparsed output line"}, line[:2000])]
        kind = msg.get("type")
        if kind == "init":
            self.session_id = str(msg.get("session_id") or "") or None
            return [AgentEvent("session", {"session_id": self.session_id}, msg)]
        if kind == "message" and msg.get("role") == "assistant":
            text = str(msg.get("content") or "")
            if not msg.get("delta"):
                self.answer = []
            self.answer.append(text)
            return [AgentEvent("text", {"text": text}, msg)]
        if kind == "tool_use":
            self.tool_calls += 1
            self.answer = []
            data = {"name": msg.get("tool_name"), "input": msg.get("parameters")}
            return [AgentEvent("tool_call", data, msg)]
        if kind == "tool_result":
            return [AgentEvent("tool_result", {"is_error": msg.get("status") == "error"}, msg)]
        if kind == "error":
            message = str(msg.get("message") or "")
            self.errors.append(message)
            return [AgentEvent("warning", {"message": message}, msg)]
        if kind == "result":
            return self._on_result(msg)
        return []

    def feed_stderr(self, line: str) -> list[AgentEvent]:
        if line.strip():
            self.stderr_tail.append(line[:2000])
        return []

    def liveness_hint(self) -> float | None:
        return None

    def _on_result(self, msg: dict[str, Any]) -> list[AgentEvent]:
        self.result = msg
        stats = _dict(msg.get("stats"))
        self.usage.input_tokens = _int(stats.get("input_tokens"))
        self.usage.output_tokens = _int(stats.get("output_tokens"))
        self.usage.cache_read = _int(stats.get("cached"))
        return [AgentEvent("usage", {"output_tokens": self.usage.output_tokens}, msg)]

    @property
    def final_text(self) -> str:
        return "".join(self.answer).strip()

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result:
        if killed_by:
            return killed_result(killed_by, exit_code=exit_code, detail=self._detail())
        outcome, reason = self._classify(exit_code)
        retry_at = None
        if outcome is Outcome.RATE_LIMITED and (match := RETRY_IN.search(self._signals())):
            seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
            retry_at = datetime.now(UTC) + timedelta(seconds=seconds)
        return Result(
            outcome=outcome,
            reason=reason,
            session_id=self.session_id,
            final_text=self.final_text or None,
            usage=self.usage,
            retry_at=retry_at,
            exit_code=exit_code,
            detail=None if outcome is Outcome.COMPLETED else self._detail(),
        )

    def _signals(self) -> str:
        error = _dict((self.result or {}).get("error"))
        return "\n".join([str(error.get("message") or ""), *self.errors, *self.stderr_tail])

    def _classify(self, exit_code: int | None) -> tuple[Outcome, str]:
        res = self.result or {}
        error_type = str(_dict(res.get("error")).get("type") or "")
        signals = self._signals()
        if res.get("status") == "success" and exit_code in (0, None):
            if not self.final_text:
                # Gemini's default path ends a context overflow as an empty "success".
                return Outcome.FAILED, "empty_result"
            return Outcome.COMPLETED, "success"
        if exit_code == EXIT_INPUT and NO_SESSION.search(signals):
            return Outcome.FAILED, "resume_failed"
        if error_type in QUOTA_ERRORS or exit_code == EXIT_QUOTA or RATE_LIMIT.search(signals):
            return Outcome.RATE_LIMITED, "quota"
        if error_type == "FatalAuthenticationError" or exit_code == EXIT_AUTH:
            return Outcome.FAILED, "auth"
        if AUTH.search(signals):
            return Outcome.FAILED, "auth"
        if CONTEXT.search(signals):
            return Outcome.HANDOFF_NEEDED, "prompt_too_long"
        if error_type == "FatalTurnLimitedError" or exit_code == EXIT_TURN_LIMIT:
            return Outcome.HANDOFF_NEEDED, "max_turns"
        if TURN_LIMIT.search(signals):
            return Outcome.HANDOFF_NEEDED, "max_turns"
        return Outcome.FAILED, "crash"

    def _detail(self) -> str | None:
        res = self.result or {}
        error = _dict(res.get("error"))
        parts = []
        if res:
            parts.append(f"status={res.get('status')} error={error.get('type')}")
            if error.get("message"):
                parts.append(str(error["message"])[:2000])
        elif self.session_id is None:
            parts.append("no stream-json output")
        parts += [f"error event: {e}" for e in self.errors[-5:]]
        if self.stderr_tail:
            parts.append("stderr:\n" + "\n".join(self.stderr_tail))
        return "\n".join(p for p in parts if p) or None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
