"""OpenCode, headless: `opencode run --format json` (agent-clis.md §4; docs/agents.md).

The prompt goes on stdin (a positional prompt reaches the model wrapped in literal quotes). There is
no final event: the stream ends when the session goes idle. Events: `step_start`, `text`,
`tool_use`, `step_finish` (tokens and, when the model's config has prices, cost, per step) and
`error` (any error makes the exit code 1, even when the session went on and finished).

What the real 1.18 binary does, and what this adapter does about it:
- It retries a retryable error (429, 5xx) five times, waiting `retry-after` when the answer has one
  (uncapped), else 2 s doubling to 30 s, and prints nothing meanwhile: a wait longer than the stall
  timeout gets the run killed as stalled. The last `error` event carries the response headers, so
  a 429's `retry_at` comes from its `retry-after`.
- A context overflow makes it compact the conversation and go on; only when the compaction
  overflows too does the run end with `ContextOverflowError`. An error followed by a clean final
  step is a success.
- `-s <unknown>` prints "Session not found" and exits 1: `resume_failed`.
- On every start it npm-installs `@opencode-ai/plugin` into `~/.config/opencode` (reaching
  registry.npmjs.org) unless that directory's `package.json` and `package-lock.json` already name
  it and `node_modules` exists: the adapter writes those three into the agent's HOME (the package
  is needed only by local plugins, which a private HOME has none of).
- `OPENCODE_DISABLE_MODELS_FETCH` keeps it from fetching models.dev (it uses its built-in list).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.agents.base import AgentEvent, Invocation, ProbeInfo, RunRequest, prompt_with_system
from runner.agents.parsing import Signals, StreamParser, as_dict, as_int, as_number
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
# The operator's opencode config (providers, models, prices): the agent's HOME is private.
PASSED_ENV = ("OPENCODE_CONFIG", "OPENCODE_CONFIG_CONTENT")
QUIET_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
}
# What keeps opencode from npm-installing its plugin package at start (see the module docstring).
PLUGIN = "@opencode-ai/plugin"
PLUGIN_DIR = Path(".config/opencode")  # relative: under the agent's HOME
PLUGIN_FILES = {
    PLUGIN_DIR / "package.json": json.dumps({"dependencies": {PLUGIN: "*"}}),
    PLUGIN_DIR / "package-lock.json": json.dumps(
        {"lockfileVersion": 3, "packages": {"": {"dependencies": {PLUGIN: "*"}}}}
    ),
    PLUGIN_DIR / "node_modules" / ".keep": "",
}
# Merged over the config's permission rules (OPENCODE_PERMISSION). `ask` is auto-rejected in run;
# a denied tool is not offered to the model at all.
PERMISSIONS: dict[str, dict[str, Any]] = {
    "read_only": {"edit": "deny", "bash": "deny", "webfetch": "deny"},
    "workspace_write": {"edit": "allow", "bash": "allow", "external_directory": "deny"},
    "full_unattended": {"edit": "allow", "bash": "allow"},
}
RATE_LIMIT = re.compile(r"rate.?limit|too many requests|quota|\b429\b", re.IGNORECASE)
AUTH_ERRORS = frozenset({"ProviderAuthError"})
CONTEXT_ERRORS = frozenset({"ContextOverflowError"})
NO_SESSION = re.compile(r"session not found", re.IGNORECASE)  # after ANSI colour codes


class OpenCodeAdapter:
    name = "opencode"
    provider: str | None = None  # whose price list prices its tokens (pricing.py)
    supported_versions = ">=1.18,<2"
    cumulative_usage = False  # `step_finish` events of this run only
    credential_env = (*CREDENTIAL_ENV, *PASSED_ENV)
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
        names = (*CREDENTIAL_ENV, *PASSED_ENV)
        env = {name: os.environ[name] for name in names if os.environ.get(name)}
        env.update(QUIET_ENV)
        env["OPENCODE_PERMISSION"] = json.dumps(permission(req))
        env.update(req.extra_env)
        prompt = prompt_with_system(req)  # `instructions` in the config takes file paths only
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=prompt.encode(),
            files=dict(PLUGIN_FILES),
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def new_parser(self) -> OpenCodeStreamParser:
        return OpenCodeStreamParser()

    def can_resume(self) -> bool:
        return True


def permission(req: RunRequest) -> dict[str, Any]:
    """``OPENCODE_PERMISSION`` for ``req``: under ``workspace_write`` the paths outside the
    worktree stay denied but those under ``req.extra_dirs`` (a plan job's folder). The tools
    ask for ``<the path's folder>/*``; the last rule that matches wins."""
    rules = dict(PERMISSIONS[req.permissions])
    if req.permissions == "workspace_write" and req.extra_dirs:
        outside: dict[str, str] = {"*": "deny"}
        for folder in req.extra_dirs:
            outside[str(folder)] = "allow"
            outside[f"{folder}/*"] = "allow"
        rules["external_directory"] = outside
    return rules


class OpenCodeStreamParser(StreamParser):
    """Reads `opencode run --format json` lines; `finish()` classifies."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.last_text: str | None = None
        self.errors: list[dict[str, Any]] = []  # every `error` event's error, in order
        self.pending: list[dict[str, Any]] = []  # errors since the last clean final step
        self.final = False  # the last step finished with `stop` and no error came after it
        self.last_error_at: datetime | None = None

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        session = msg.get("sessionID")
        if isinstance(session, str) and session != self.session_id:
            self.session_id = session
            events.append(AgentEvent("session", {"session_id": session}, msg))
        part = as_dict(msg.get("part"))
        kind = msg.get("type")
        if kind == "text":
            self.last_text = str(part.get("text") or "")
            events.append(AgentEvent("text", {"text": self.last_text}, msg))
        elif kind == "tool_use":
            state = as_dict(part.get("state"))
            events.append(AgentEvent("tool_call", {"name": part.get("tool")}, msg))
            # A call of a tool it does not offer (one the permissions deny, say) runs as `invalid`.
            is_error = state.get("status") == "error" or part.get("tool") == "invalid"
            events.append(AgentEvent("tool_result", {"is_error": is_error}, msg))
        elif kind == "step_finish":
            self._add_step(part)
            self.final = part.get("reason") == "stop"
            if self.final:
                self.pending = []
            events.append(AgentEvent("usage", {"cost_usd": self.usage.cost_usd}, msg))
        elif kind == "error":
            error = as_dict(msg.get("error"))
            self.errors.append(error)
            self.pending.append(error)
            self.final = False
            stamp = as_number(msg.get("timestamp"))
            self.last_error_at = datetime.fromtimestamp(stamp / 1000, UTC) if stamp else None
            data = {"name": error.get("name"), "message": _message(error)}
            events.append(AgentEvent("error", data, msg))
        return events

    def _add_step(self, part: dict[str, Any]) -> None:
        self.steps += 1
        self.num_turns = self.steps
        tokens = as_dict(part.get("tokens"))
        cache = as_dict(tokens.get("cache"))
        self.usage.input_tokens += as_int(tokens.get("input"))
        self.usage.output_tokens += as_int(tokens.get("output"))
        self.usage.reasoning_tokens += as_int(tokens.get("reasoning"))
        self.usage.cache_read += as_int(cache.get("read"))
        self.usage.cache_write += as_int(cache.get("write"))
        self.usage.context_tokens = as_int(tokens.get("input")) + as_int(cache.get("read")) or None
        cost = as_number(part.get("cost"))
        if cost is not None:
            self.usage.cost_usd = (self.usage.cost_usd or 0.0) + cost

    def signals(self, exit_code: int | None) -> Signals:
        errors = self.pending
        names = {str(e.get("name")) for e in errors}
        data = [as_dict(e.get("data")) for e in errors]
        statuses = {d.get("statusCode") for d in data}
        text = "\n".join(_message(e) for e in errors)
        rate_limited = 429 in statuses or bool(
            names & {"APIError", "UnknownError"} and RATE_LIMIT.search(text)
        )
        clean = self.final and (exit_code == 0 or bool(self.errors))
        return Signals(
            clean_final=clean,
            final_text=self.last_text,
            resume_failed=not self.steps and bool(NO_SESSION.search("\n".join(self.stderr_tail))),
            rate_limited=rate_limited,
            retry_at=self._retry_at(data) if rate_limited else None,
            auth=bool(names & AUTH_ERRORS or statuses & {401, 403}),
            context_overflow=bool(names & CONTEXT_ERRORS),
        )

    def _retry_at(self, data: list[dict[str, Any]]) -> datetime | None:
        """The last 429's `retry-after` (seconds), counted from its `error` event."""
        for item in reversed(data):
            headers = as_dict(item.get("responseHeaders"))
            seconds = _float(headers.get("retry-after"))
            if item.get("statusCode") == 429 and seconds is not None:
                return (self.last_error_at or datetime.now(UTC)) + timedelta(seconds=seconds)
        return None

    def detail_parts(self) -> list[str]:
        parts = [f"{e.get('name')}: {_message(e)}" for e in self.errors[-5:]]
        if self.session_id is None:
            parts.append("no JSON events")
        return parts


def _message(error: dict[str, Any]) -> str:
    return str(as_dict(error.get("data")).get("message") or error.get("message") or "")


def _float(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None
