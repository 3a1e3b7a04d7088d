"""OpenAI Codex CLI, headless: `codex exec --json -s workspace-write -` (agent-clis.md §3).

The prompt goes on stdin (`-`). The JSONL stream is the source of truth: `turn.completed` is
success, `turn.failed` is failure, and a stream-level `error` line is not terminal by itself (Codex
also reports errors it is about to retry). Codex reports no cost and no turn count: the runner
prices its tokens (runner.agents.pricing) for the model of `Result.model`, else the one asked for.

Codex 0.171 ignores `OPENAI_BASE_URL`. A base URL (`STONEFORGE_CODEX_BASE_URL`, else
`OPENAI_BASE_URL`) becomes a model provider of its own, given with `-c` overrides (so an operator's
`CODEX_HOME/config.toml` is neither needed nor rewritten) that speaks the Responses API over HTTPS
(the built-in `openai` provider tries WebSockets first). Every run also turns off the update
check, analytics, feedback and the plugin sync (which looks up chatgpt.com).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from runner.agents.base import AgentEvent, Invocation, ProbeInfo, RunRequest
from runner.agents.parsing import Signals, StreamParser, as_dict, as_int
from runner.agents.probe import probe_version

BIN_ENV = "STONEFORGE_CODEX_BIN"
CREDENTIAL_ENV = ("CODEX_API_KEY", "OPENAI_API_KEY")
PASSED_ENV = ("CODEX_HOME",)
# Where the model server is, first set wins (the request's extra_env, then the runner's own).
BASE_URL_ENV = ("STONEFORGE_CODEX_BASE_URL", "OPENAI_BASE_URL")
PROVIDER = "stoneforge"  # the model provider id a base URL is given under
# Off on every run: nothing but the model server is reached (the plugin sync looks up chatgpt.com).
QUIET: dict[str, object] = {
    "check_for_update_on_startup": False,
    "analytics.enabled": False,
    "feedback.enabled": False,
    "features.plugins": False,
}
SANDBOX = {"read_only": "read-only", "workspace_write": "workspace-write"}
# Seconds a stream `error` line (Codex announcing a retry) extends the stall timer.
RETRY_GRACE_S = 30.0
RATE_LIMIT = re.compile(
    r"usage limit|rate.?limit|quota exceeded|too many requests|last status: 429|\b429\b",
    re.IGNORECASE,
)
AUTH = re.compile(
    r"requires ChatGPT authentication|API key authentication|codex login|invalid api key"
    r"|unauthorized|\b401\b",
    re.IGNORECASE,
)
# The model Codex really used, when it says (an unknown model's fallback, or a reroute).
MODEL_METADATA = re.compile(r"Model metadata for `([^`]+)` not found")
MODEL_REROUTED = re.compile(r"model rerouted: \S+ -> (\S+)")
# `exec resume <uuid>` of a thread it does not have: exit 1 before any event.
NO_THREAD = re.compile(r"no rollout found for (thread|conversation) id", re.IGNORECASE)
CONTEXT = re.compile(r"ran out of room in the model's context window|context.window", re.IGNORECASE)
TRY_AGAIN_IN = re.compile(r"try again in\s+([^.]*)", re.IGNORECASE)
TRY_AGAIN_AT = re.compile(r"try again at\s+(\d{1,2}):(\d{2})\s*([AP]M)?", re.IGNORECASE)
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(second|sec|s|minute|min|m|hour|hr|h|day|d)\w*", re.I)
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CodexAdapter:
    """`config`: extra `-c key=value` overrides (values in TOML, as JSON writes them), for
    instance `{"model_providers.stoneforge.request_max_retries": 0}`."""

    name = "codex"
    provider: str | None = "openai"  # whose price list prices its tokens
    supported_versions = ">=0.171,<1"
    # After `exec resume`, `turn.completed.usage` is the whole thread's (from 0.155 on; 0.153
    # reported the turn alone).
    cumulative_usage = True
    credential_env = (*CREDENTIAL_ENV, *PASSED_ENV, *BASE_URL_ENV)
    bin_env = BIN_ENV

    def __init__(
        self, binary: str | None = None, *, config: Mapping[str, object] | None = None
    ) -> None:
        self.binary = binary or os.environ.get(BIN_ENV, "codex")
        self.config = dict(config or {})

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return probe_version(
            "codex", binary or self.binary, env_var=BIN_ENV, supported=self.supported_versions
        )

    def build(self, req: RunRequest) -> Invocation:
        argv = [self.binary, "exec", "--json"]
        if req.permissions == "full_unattended":
            argv.append("--dangerously-bypass-approvals-and-sandbox")
        else:
            argv += ["-s", SANDBOX[req.permissions]]
        if req.permissions == "workspace_write":
            # Writable roots of the sandbox beside the worktree (a plan job's plan folder).
            for folder in req.extra_dirs:
                argv += ["--add-dir", str(folder)]
        argv += ["-c", 'approval_policy="never"', "-C", str(req.workdir)]
        argv += _overrides({**QUIET, **self._provider(req), **self.config})
        if req.model:
            argv += ["-m", req.model]
        if req.system_append:
            # A JSON string is a valid TOML basic string.
            argv += ["-c", f"developer_instructions={json.dumps(req.system_append)}"]
        if req.resume_session:
            argv += ["resume", req.resume_session]
        argv.append("-")  # the prompt comes from stdin
        env = {n: os.environ[n] for n in (*CREDENTIAL_ENV, *PASSED_ENV) if os.environ.get(n)}
        env.update((n, v) for n, v in req.extra_env.items() if n not in BASE_URL_ENV)
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=req.prompt.encode(),
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def _provider(self, req: RunRequest) -> dict[str, object]:
        """The `-c` overrides that point Codex at a base URL, or none when none is set."""
        found = (req.extra_env.get(n) or os.environ.get(n) for n in BASE_URL_ENV)
        base_url = next((url for url in found if url), None)
        if base_url is None:
            return {}
        key = next((n for n in CREDENTIAL_ENV if req.extra_env.get(n) or os.environ.get(n)), None)
        table = f"model_providers.{PROVIDER}"
        return {
            "model_provider": PROVIDER,
            f"{table}.name": PROVIDER,
            f"{table}.base_url": base_url.rstrip("/"),
            f"{table}.env_key": key or CREDENTIAL_ENV[0],
            f"{table}.wire_api": "responses",
        }

    def new_parser(self) -> CodexStreamParser:
        return CodexStreamParser()

    def can_resume(self) -> bool:
        return True


class CodexStreamParser(StreamParser):
    """Reads `codex exec --json` lines; `finish()` classifies (rules in runner.agents.parsing)."""

    def __init__(self) -> None:
        super().__init__()
        # self.model only when Codex names it (else the runner prices the one asked for).
        self.last_text: str | None = None
        self.completed = False
        self.failure: str | None = None  # turn.failed message
        self.errors: list[str] = []  # stream-level error messages, possibly retried
        self.retry_wait_s: float | None = None

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
        self.retry_wait_s = None
        kind = str(msg.get("type"))
        if kind == "thread.started":
            self.session_id = str(msg.get("thread_id") or "") or None
            return [AgentEvent("session", {"session_id": self.session_id}, msg)]
        if kind.startswith("item."):
            return self._on_item(kind, as_dict(msg.get("item")), msg)
        if kind == "turn.completed":
            self._add_usage(as_dict(msg.get("usage")))
            self.completed, self.failure = True, None
            return [AgentEvent("usage", {"output_tokens": self.usage.output_tokens}, msg)]
        if kind == "turn.failed":
            self.completed = False
            self.failure = str(as_dict(msg.get("error")).get("message") or "turn failed")
            return [AgentEvent("error", {"message": self.failure}, msg)]
        if kind == "error":
            message = str(msg.get("message") or "")
            self.errors.append(message)
            self.retry_wait_s = RETRY_GRACE_S
            if RATE_LIMIT.search(message):
                return [AgentEvent("rate_limit_info", {"message": message}, msg)]
            return [AgentEvent("retry", {"message": message}, msg)]
        return []

    def liveness_hint(self) -> float | None:
        return self.retry_wait_s

    def _on_item(self, kind: str, item: dict[str, Any], msg: dict[str, Any]) -> list[AgentEvent]:
        itype = item.get("type")
        if kind == "item.completed" and itype == "agent_message":
            self.last_text = str(item.get("text") or "")
            return [AgentEvent("text", {"text": self.last_text}, msg)]
        if itype in ("command_execution", "file_change", "mcp_tool_call", "web_search"):
            if kind == "item.started":
                return [AgentEvent("tool_call", {"name": itype, "input": item}, msg)]
            if kind == "item.completed":
                failed = item.get("status") in ("failed", "declined")
                return [AgentEvent("tool_result", {"is_error": failed}, msg)]
        if kind == "item.completed" and itype == "error":
            message = str(item.get("message") or "")
            if match := MODEL_REROUTED.search(message) or MODEL_METADATA.search(message):
                self.model = match.group(1)
            return [AgentEvent("warning", {"message": message}, msg)]
        return []

    def _add_usage(self, usage: dict[str, Any]) -> None:
        # The thread's running total: replace, do not add (one `exec` is one turn). Codex's
        # `input_tokens` include the cached ones (the Responses API's count); ours do not.
        cached = as_int(usage.get("cached_input_tokens"))
        self.usage.input_tokens = max(as_int(usage.get("input_tokens")) - cached, 0)
        self.usage.cache_read = cached
        self.usage.cache_write = as_int(usage.get("cache_write_input_tokens"))
        self.usage.output_tokens = as_int(usage.get("output_tokens"))
        self.usage.reasoning_tokens = as_int(usage.get("reasoning_output_tokens"))

    def signals(self, exit_code: int | None) -> Signals:
        """`turn.completed` is the clean end whatever came before it; else the failure's words
        (the `turn.failed` message, stream `error` lines, stderr) say what went wrong."""
        if self.completed:
            return Signals(clean_final=True, final_text=self.last_text)
        said = "\n".join([self.failure or "", *self.errors, *self.stderr_tail])
        rate_limited = bool(RATE_LIMIT.search(said))
        retry_text = self.failure or " ".join(self.errors)
        return Signals(
            final_text=self.last_text,
            resume_failed=self.session_id is None and bool(NO_THREAD.search(said)),
            rate_limited=rate_limited,
            retry_at=retry_at_from_text(retry_text, datetime.now(UTC)) if rate_limited else None,
            auth=bool(AUTH.search(said)),
            context_overflow=bool(CONTEXT.search(said)),
        )

    def detail_parts(self) -> list[str]:
        parts = []
        if self.failure:
            parts.append(f"turn failed: {self.failure}")
        parts += [f"error: {e}" for e in self.errors[-5:]]
        if self.session_id is None:
            parts.append("no JSON events")
        return parts


def retry_at_from_text(text: str, now: datetime) -> datetime | None:
    """Parse "try again in 2 hours 5 minutes" or "try again at 3:04 PM" (UTC assumed)."""
    if match := TRY_AGAIN_IN.search(text):
        seconds = sum(
            float(n) * UNIT_S[unit[0].lower()] for n, unit in DURATION.findall(match.group(1))
        )
        if seconds:
            return now + timedelta(seconds=seconds)
    if match := TRY_AGAIN_AT.search(text):
        hour, minute, half = int(match.group(1)), int(match.group(2)), match.group(3)
        if half:
            hour = hour % 12 + (12 if half.upper() == "PM" else 0)
        if hour < 24 and minute < 60:
            at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            return at if at > now else at + timedelta(days=1)
    return None


def _overrides(config: Mapping[str, object]) -> list[str]:
    """`-c key=value` pairs; a JSON scalar is a valid TOML value."""
    return [arg for key, value in config.items() for arg in ("-c", f"{key}={json.dumps(value)}")]
