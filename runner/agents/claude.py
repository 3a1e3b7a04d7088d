"""Claude Code, headless: `claude -p --output-format stream-json --verbose` (agent-clis.md §2).

The event stream is the source of truth; the exit code only breaks ties (API failures can exit 0).
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from typing import Any, Literal

from runner.agents.base import (
    AgentEvent,
    Invocation,
    ProbeInfo,
    RunRequest,
)
from runner.agents.parsing import LINE_KEPT, Signals, StreamParser, as_dict, as_int, as_number
from runner.agents.probe import ProbeError

# Credentials of the CLI itself, copied from the runner's environment only when present.
CREDENTIAL_ENV = (
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
)
QUIET_ENV = {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
DEFAULT_TOOLS = ["Read", "Edit", "Write", "Glob", "Grep", "Bash"]
DEFAULT_MAX_TURNS = 80
PERMISSION_MODES = {
    "read_only": "plan",
    "workspace_write": "dontAsk",
    "full_unattended": "bypassPermissions",
}
AUTH_ERRORS = frozenset({"authentication_failed", "oauth_org_not_allowed", "billing_error"})
STDERR_LIMIT = re.compile(r"hit your (usage )?limit", re.IGNORECASE)
STDERR_AUTH = re.compile(r"invalid api key|please run /login|authentication", re.IGNORECASE)
TOO_LONG = "prompt is too long"
NO_SESSION = re.compile(r"No conversation found with session ID", re.IGNORECASE)  # --resume
SYNTHETIC = "<synthetic>"  # the model of the CLI's own API-error messages
CONTEXT_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class ClaudeAdapter:
    name = "claude"
    provider: str | None = "anthropic"  # whose price list prices its tokens (pricing.py)
    supported_versions = ">=2.1.300,<2.2"
    # A resumed session continues from the totals its transcript saved (sdk.d.ts).
    cumulative_usage = True
    credential_env = CREDENTIAL_ENV
    bin_env = "STONEFORGE_CLAUDE_BIN"

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get("STONEFORGE_CLAUDE_BIN", "claude")

    def probe(self, binary: str | None = None) -> ProbeInfo:
        argv = [binary or self.binary]
        try:
            version = subprocess.run(
                [*argv, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
        except FileNotFoundError:
            raise ProbeError(f"{argv[0]} not found on PATH (set STONEFORGE_CLAUDE_BIN)") from None
        helptext = subprocess.run(
            [*argv, "--help"], capture_output=True, text=True, timeout=30, check=False
        )
        flags = frozenset(re.findall(r"--[a-z][a-z-]+", helptext.stdout))
        return ProbeInfo(version=version.stdout.strip() or None, flags=flags)

    def build(self, req: RunRequest) -> Invocation:
        argv = [self.binary, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--permission-mode", PERMISSION_MODES[req.permissions]]
        if req.permissions == "workspace_write":
            argv += ["--allowedTools", ",".join(req.allowed_tools or DEFAULT_TOOLS)]
        for folder in req.extra_dirs:
            argv += ["--add-dir", str(folder)]
        argv += ["--max-turns", str(req.max_turns or DEFAULT_MAX_TURNS)]
        if req.budget_usd is not None:
            argv += ["--max-budget-usd", f"{req.budget_usd:g}"]
        if req.model:
            argv += ["--model", req.model]
        if req.resume_session:
            argv += ["--resume", req.resume_session]
        elif req.session_id:
            argv += ["--session-id", req.session_id]
        if req.system_append:
            argv += ["--append-system-prompt", req.system_append]
        env = {name: os.environ[name] for name in CREDENTIAL_ENV if os.environ.get(name)}
        env.update(QUIET_ENV)
        env.update(req.extra_env)
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=req.prompt.encode(),
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def new_parser(self) -> ClaudeStreamParser:
        return ClaudeStreamParser()

    def can_resume(self) -> bool:
        return True


class ClaudeStreamParser(StreamParser):
    """Reads stream-json lines; ``finish()`` classifies the run (rules in runner.agents.parsing).

    What the real 2.1.328 binary prints (tests/conformance/test_claude.py): an API failure ends
    with a synthetic ``assistant`` message (``model: "<synthetic>"``, ``error`` such as
    ``rate_limit`` / ``authentication_failed`` / ``invalid_request`` / ``server_error``) and a
    ``result`` with ``subtype: "success"``, ``is_error: true``, ``api_error_status`` and a
    ``terminal_reason`` (``api_error``, ``prompt_too_long``), exit 1. Retries announce themselves
    as ``system/api_retry`` with the wait in ``retry_delay_ms`` (the provider's ``retry-after``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.last_text: str | None = None
        self.tool_calls = 0
        self.rate_limited = False
        self.retry_at: datetime | None = None
        self.api_error: str | None = None
        self.compacted = False
        self.retry_wait_s: float | None = None

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
        self.retry_wait_s = None
        if isinstance(msg.get("session_id"), str):
            self.session_id = msg["session_id"]
        handler = getattr(self, f"_on_{msg.get('type')}", None)
        return handler(msg) if handler else []

    def on_stderr(self, line: str) -> list[AgentEvent]:
        if STDERR_LIMIT.search(line):
            self.rate_limited = True
            return [AgentEvent("rate_limit_info", {"status": "rejected"}, line)]
        return []

    def liveness_hint(self) -> float | None:
        return self.retry_wait_s

    def near_full(self) -> bool:
        return self.compacted

    # -- message handlers --------------------------------------------------------------------

    def _on_system(self, msg: dict[str, Any]) -> list[AgentEvent]:
        subtype = msg.get("subtype")
        if subtype == "init":
            if isinstance(msg.get("model"), str):
                self.model = msg["model"]
            return [AgentEvent("session", {"session_id": self.session_id}, msg)]
        if subtype == "api_retry":
            self.retry_wait_s = (as_number(msg.get("retry_delay_ms")) or 0.0) / 1000
            data = {"attempt": msg.get("attempt"), "error": msg.get("error")}
            return [AgentEvent("retry", data, msg)]
        if subtype == "compact_boundary":
            self.compacted = True
            return [AgentEvent("compaction", as_dict(msg.get("compact_metadata")), msg)]
        if subtype == "permission_denied":
            return [AgentEvent("warning", {"message": f"denied {msg.get('tool_name')}"}, msg)]
        return []

    def _on_assistant(self, msg: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        error = msg.get("error")
        if isinstance(error, str):
            self.api_error = error
            if error == "rate_limit":
                self.rate_limited = True
            events.append(AgentEvent("error", {"error": error}, msg))
        message = as_dict(msg.get("message"))
        usage = message.get("usage")
        main_loop = msg.get("parent_tool_use_id") is None
        if isinstance(usage, dict) and main_loop and not error:
            self.usage.context_tokens = sum(as_int(usage.get(k)) for k in CONTEXT_KEYS)
        model = message.get("model")
        if isinstance(model, str) and main_loop and not error and model != SYNTHETIC:
            self.model = model
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and not error:
                self.last_text = str(block.get("text", ""))
                events.append(AgentEvent("text", {"text": self.last_text}, msg))
            elif block.get("type") == "tool_use":
                self.tool_calls += 1
                data = {"name": block.get("name"), "input": block.get("input")}
                events.append(AgentEvent("tool_call", data, msg))
        return events

    def _on_user(self, msg: dict[str, Any]) -> list[AgentEvent]:
        message = as_dict(msg.get("message"))
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        return [
            AgentEvent("tool_result", {"is_error": bool(b.get("is_error"))}, None)
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]

    def _on_rate_limit_event(self, msg: dict[str, Any]) -> list[AgentEvent]:
        # Subscription (claude.ai) limits only: an API key's 429 never produces one.
        info = as_dict(msg.get("rate_limit_info"))
        if info.get("status") == "rejected":
            self.rate_limited = True
            resets = as_number(info.get("resetsAt"))
            if resets:
                self.retry_at = datetime.fromtimestamp(resets, UTC)
        return [AgentEvent("rate_limit_info", dict(info), msg)]

    def _on_result(self, msg: dict[str, Any]) -> list[AgentEvent]:
        self.result = msg
        totals = _model_usage_totals(msg.get("modelUsage"))
        if totals is not None:
            self.usage.input_tokens, self.usage.output_tokens = totals[0], totals[1]
            self.usage.cache_read, self.usage.cache_write = totals[2], totals[3]
            self.usage.reasoning_tokens = totals[4]
        else:
            usage = as_dict(msg.get("usage"))
            self.usage.input_tokens = as_int(usage.get("input_tokens"))
            self.usage.output_tokens = as_int(usage.get("output_tokens"))
            self.usage.cache_read = as_int(usage.get("cache_read_input_tokens"))
            self.usage.cache_write = as_int(usage.get("cache_creation_input_tokens"))
            self.usage.reasoning_tokens = as_int(
                as_dict(usage.get("output_tokens_details")).get("thinking_tokens")
            )
        self.usage.cost_usd = as_number(msg.get("total_cost_usd"))
        if as_number(msg.get("num_turns")) is not None:
            self.num_turns = as_int(msg.get("num_turns"))
        if msg.get("is_error") is False and msg.get("subtype") == "success":
            self.rate_limited = False  # a later success clears earlier rate signals
        return [AgentEvent("usage", {"cost_usd": self.usage.cost_usd}, msg)]

    # -- classification ----------------------------------------------------------------------

    def signals(self, exit_code: int | None) -> Signals:
        res = self.result or {}
        terminal = res.get("terminal_reason")
        subtype = res.get("subtype")
        status = res.get("api_error_status")
        text = str(res.get("result") or "")
        errors = " ".join(str(e) for e in res.get("errors") or [])
        stderr = "\n".join(self.stderr_tail)
        clean = subtype == "success" and res.get("is_error") is False
        cap: Literal["max_turns", "budget"] | None = None
        if subtype == "error_max_turns" or terminal == "max_turns":
            cap = "max_turns"
        elif subtype == "error_max_budget_usd" or terminal == "budget_exhausted":
            cap = "budget"
        return Signals(
            clean_final=clean,
            final_text=(text or self.last_text) if clean else (text or None),
            resume_failed=bool(NO_SESSION.search(f"{errors}\n{stderr}")),
            rate_limited=self.rate_limited or status == 429,
            retry_at=self.retry_at,
            auth=(
                self.api_error in AUTH_ERRORS
                or status in (401, 403)
                or (not res and bool(STDERR_AUTH.search(stderr)))
            ),
            context_overflow=terminal == "prompt_too_long" or TOO_LONG in text.lower(),
            cap=cap,
        )

    def detail_parts(self) -> list[str]:
        res = self.result or {}
        parts = []
        if res:
            keys = ("subtype", "terminal_reason", "api_error_status", "startup_failure_reason")
            parts.append(", ".join(f"{k}={res[k]}" for k in keys if res.get(k) is not None))
            if isinstance(res.get("result"), str) and res["result"]:
                parts.append(res["result"][:LINE_KEPT])
            parts += [str(e)[:LINE_KEPT] for e in res.get("errors") or []]
        elif self.session_id is None:
            parts.append("no stream-json output")
        if self.api_error:
            parts.append(f"api error: {self.api_error}")
        if self.retry_at:
            parts.append(f"retry at {self.retry_at.isoformat()}")
        return parts


MODEL_USAGE_KEYS = (
    "inputTokens",
    "outputTokens",
    "cacheReadInputTokens",
    "cacheCreationInputTokens",
    "thinkingTokens",
)


def _model_usage_totals(value: object) -> tuple[int, ...] | None:
    """The session's running token totals, summed over its models (``modelUsage``), in
    ``MODEL_USAGE_KEYS`` order; None when the result has none (a run that failed at once).

    ``result.usage`` counts only this process's main loop, while ``total_cost_usd`` and
    ``modelUsage`` are the session's running totals (a resumed run includes the runs before):
    the tokens must come from the same total as the cost for the runner's per-run differences.
    """
    models = [m for m in as_dict(value).values() if isinstance(m, dict)]
    if not models:
        return None
    return tuple(sum(as_int(m.get(key)) for m in models) for key in MODEL_USAGE_KEYS)
