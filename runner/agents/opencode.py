"""OpenCode, headless: `opencode run --format json` (agent-clis.md §4).

The prompt goes on stdin (opencode reads a non-TTY stdin to EOF as the message). There is no final
event: the stream ends when the session goes idle. Success is exit 0 with no `error` event and a
final `text`; tokens and cost are summed over `step_finish` events. Retries are invisible in JSON
mode, so a long rate-limit wait looks like silence to the stall timer.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
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

BIN_ENV = "STONEFORGE_OPENCODE_BIN"
# Provider keys opencode reads from the environment, plus its own stored-auth override.
CREDENTIAL_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENERATIVE_AI_API_KEY",
    "OPENROUTER_API_KEY",
    "OPENCODE_AUTH_CONTENT",
)
QUIET_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}
# Merged over the config's permission rules (OPENCODE_PERMISSION). `ask` is auto-rejected in run.
PERMISSIONS: dict[str, dict[str, Any]] = {
    "read_only": {"edit": "deny", "bash": "deny", "webfetch": "deny"},
    "workspace_write": {"edit": "allow", "bash": "allow", "external_directory": "deny"},
    "full_unattended": {"edit": "allow", "bash": "allow"},
}
RATE_LIMIT = re.compile(r"rate.?limit|too many requests|quota|\b429\b", re.IGNORECASE)
AUTH_ERRORS = frozenset({"ProviderAuthError"})
CONTEXT_ERRORS = frozenset({"ContextOverflowError"})
# `run -s <missing>` writes a NotFoundError to stderr and exits 0 with no events
# (anomalyco/opencode#27559).
NO_SESSION = re.compile(r"\bsession not found\b", re.IGNORECASE)


class OpenCodeAdapter:
    name = "opencode"
    supported_versions = ">=1.18,<2"
    cumulative_usage = False  # `step_finish` events of this run only
    credential_env = CREDENTIAL_ENV
    bin_env = BIN_ENV

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get(BIN_ENV, "opencode")

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return probe_version(
            "opencode", binary or self.binary, env_var=BIN_ENV, supported=self.supported_versions
        )

    def build(self, req: RunRequest) -> Invocation:
        argv = [self.binary, "run", "--format", "json", "--dir", str(req.workdir)]
        if req.model:
            argv += ["-m", req.model]
        if req.resume_session:
            argv += ["-s", req.resume_session]
        if req.permissions == "full_unattended":
            argv.append("--auto")
        env = {name: os.environ[name] for name in CREDENTIAL_ENV if os.environ.get(name)}
        env.update(QUIET_ENV)
        env["OPENCODE_PERMISSION"] = json.dumps(PERMISSIONS[req.permissions])
        env.update(req.extra_env)
        prompt = req.prompt
        if req.system_append:  # `instructions` in the config takes file paths only
            prompt = f"{req.system_append}\n\n{prompt}"
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=prompt.encode(),
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def new_parser(self) -> OpenCodeStreamParser:
        return OpenCodeStreamParser()

    def can_resume(self) -> bool:
        return True


class OpenCodeStreamParser:
    """Reads `opencode run --format json` lines; `finish()` classifies."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.usage = Usage()
        self.steps = 0
        self.last_text: str | None = None
        self.errors: list[dict[str, Any]] = []
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
        events: list[AgentEvent] = []
        session = msg.get("sessionID")
        if isinstance(session, str) and session != self.session_id:
            self.session_id = session
            events.append(AgentEvent("session", {"session_id": session}, msg))
        part = _dict(msg.get("part"))
        kind = msg.get("type")
        if kind == "text":
            self.last_text = str(part.get("text") or "")
            events.append(AgentEvent("text", {"text": self.last_text}, msg))
        elif kind == "tool_use":
            state = _dict(part.get("state"))
            events.append(AgentEvent("tool_call", {"name": part.get("tool")}, msg))
            is_error = state.get("status") == "error"
            events.append(AgentEvent("tool_result", {"is_error": is_error}, msg))
        elif kind == "step_finish":
            self._add_step(part)
            events.append(AgentEvent("usage", {"cost_usd": self.usage.cost_usd}, msg))
        elif kind == "error":
            error = _dict(msg.get("error"))
            self.errors.append(error)
            data = {"name": error.get("name"), "message": _message(error)}
            events.append(AgentEvent("error", data, msg))
        return events

    def feed_stderr(self, line: str) -> list[AgentEvent]:
        if line.strip():
            self.stderr_tail.append(line[:2000])
        return []

    def liveness_hint(self) -> float | None:
        return None

    def _add_step(self, part: dict[str, Any]) -> None:
        self.steps += 1
        tokens = _dict(part.get("tokens"))
        cache = _dict(tokens.get("cache"))
        self.usage.input_tokens += _int(tokens.get("input"))
        self.usage.output_tokens += _int(tokens.get("output"))
        self.usage.reasoning_tokens += _int(tokens.get("reasoning"))
        self.usage.cache_read += _int(cache.get("read"))
        self.usage.cache_write += _int(cache.get("write"))
        self.usage.context_tokens = _int(tokens.get("input")) + _int(cache.get("read")) or None
        cost = part.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.usage.cost_usd = (self.usage.cost_usd or 0.0) + float(cost)

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result:
        if killed_by:
            return killed_result(killed_by, exit_code=exit_code, detail=self._detail())
        outcome, reason = self._classify(exit_code)
        return Result(
            outcome=outcome,
            reason=reason,
            session_id=self.session_id,
            final_text=self.last_text,
            num_turns=self.steps or None,
            usage=self.usage,
            exit_code=exit_code,
            detail=None if outcome is Outcome.COMPLETED else self._detail(),
        )

    def _classify(self, exit_code: int | None) -> tuple[Outcome, str]:
        names = {str(e.get("name")) for e in self.errors}
        statuses = {_dict(e.get("data")).get("statusCode") for e in self.errors}
        text = "\n".join([*(_message(e) for e in self.errors), *self.stderr_tail])
        if 429 in statuses or (names & {"APIError", "UnknownError"} and RATE_LIMIT.search(text)):
            return Outcome.RATE_LIMITED, "quota"
        if names & AUTH_ERRORS or statuses & {401, 403}:
            return Outcome.FAILED, "auth"
        if names & CONTEXT_ERRORS:
            return Outcome.HANDOFF_NEEDED, "prompt_too_long"
        if not self.steps and NO_SESSION.search(text):
            return Outcome.FAILED, "resume_failed"
        if exit_code == 0 and not self.errors and self.steps:
            if not (self.last_text or "").strip():
                return Outcome.FAILED, "empty_result"
            return Outcome.COMPLETED, "success"
        return Outcome.FAILED, "crash"

    def _detail(self) -> str | None:
        parts = [f"{e.get('name')}: {_message(e)}" for e in self.errors[-5:]]
        if self.session_id is None:
            parts.append("no JSON events")
        if self.stderr_tail:
            parts.append("stderr:\n" + "\n".join(self.stderr_tail))
        return "\n".join(parts) or None


def _message(error: dict[str, Any]) -> str:
    return str(_dict(error.get("data")).get("message") or error.get("message") or "")


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
