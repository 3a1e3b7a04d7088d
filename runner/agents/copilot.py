"""GitHub Copilot CLI, headless: `copilot --output-format json ...`, the prompt on stdin
(docs/agents.md).

The JSONL stream (`{type, data, id, timestamp}`) ends with a `result` line (`sessionId`,
`exitCode`). A failed model call is a `model.call_failure`; Copilot retries it (a 429 five times,
waiting its `retry-after`, silently) and announces each retry with `assistant.turn_retry`; the run's
failure is a `session.error` (`errorType`: `rate_limit`, `authentication`, `query`, ...).

Tokens are not in the stream: `--usage-output-file` writes them at the end (`modelMetrics`, per
model; `inputTokens` include the cached ones; after a resume, the whole session's). Copilot
reports no cost in money (premium requests, and 0 with a provider of one's own), so the runner
prices the tokens for `Result.model`.

With a provider of one's own (BYOK: `COPILOT_PROVIDER_BASE_URL`, `COPILOT_PROVIDER_API_KEY`,
`COPILOT_MODEL`) and `COPILOT_OFFLINE=true` it needs no GitHub login and reaches nothing else;
otherwise it signs in with `COPILOT_GITHUB_TOKEN` (the runner never passes `GH_TOKEN` or
`GITHUB_TOKEN`, which are its own).

The usage file lives in a per-run directory outside the worktree: `build()` picks it, the next
`new_parser()` reads it in `finish()` and removes it (`runner.process.run_agent` calls build, then
new_parser).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from runner.agents.base import AgentEvent, Invocation, ProbeInfo, RunRequest, prompt_with_system
from runner.agents.parsing import Signals, StreamParser, as_dict, as_int
from runner.agents.probe import probe_version

BIN_ENV = "STONEFORGE_COPILOT_BIN"
CREDENTIAL_ENV = (
    "COPILOT_GITHUB_TOKEN",
    "COPILOT_PROVIDER_API_KEY",
    "COPILOT_PROVIDER_BEARER_TOKEN",
)
# The provider of one's own (BYOK) and where to sign in, passed on when the runner has them.
PASSED_ENV = (
    "COPILOT_PROVIDER_BASE_URL",
    "COPILOT_PROVIDER_TYPE",
    "COPILOT_PROVIDER_WIRE_API",
    "COPILOT_PROVIDER_MODEL_ID",
    "COPILOT_PROVIDER_WIRE_MODEL",
    "COPILOT_PROVIDER_MAX_PROMPT_TOKENS",
    "COPILOT_PROVIDER_MAX_OUTPUT_TOKENS",
    "COPILOT_PROVIDER_HEADERS",
    "COPILOT_PROVIDER_AZURE_API_VERSION",
    "COPILOT_OFFLINE",
    "COPILOT_MODEL",
    "COPILOT_GH_HOST",
    "GH_HOST",
)
QUIET_ENV = {"COPILOT_AUTO_UPDATE": "false", "NO_COLOR": "1"}
FIXED_FLAGS = [
    "--output-format",
    "json",
    "--no-auto-update",
    "--disable-client-telemetry",
    "--no-ask-user",
    "--no-color",
]
# `--deny-tool` wins over `--allow-all-tools`; the kinds are Copilot's permission kinds.
PERMISSIONS: dict[str, list[str]] = {
    "read_only": ["--allow-all-tools", "--deny-tool", "shell", "--deny-tool", "write"],
    "workspace_write": ["--allow-all-tools"],  # paths: the working directory and the temp dir
    "full_unattended": ["--allow-all"],
}
CONTEXT = re.compile(
    r"maximum context length|context_length_exceeded|context window|prompt is too long", re.I
)
# `--resume=<unknown>`: exit 1 before any event.
NO_SESSION = re.compile(r"No session, task, or name matched", re.IGNORECASE)
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
# Seconds a failed call that Copilot will retry extends the stall timer (it waits silently,
# `retry-after` when the answer has one).
RETRY_GRACE_S = 120.0


class CopilotAdapter:
    name = "copilot"
    credential_env = (*CREDENTIAL_ENV, *PASSED_ENV)
    bin_env = BIN_ENV
    provider: str | None = None  # the model's own provider prices its tokens
    supported_versions = ">=1.0.100,<2"
    # After `--resume` the usage file counts the whole session's calls (the earlier runs' too).
    cumulative_usage = True

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get(BIN_ENV, "copilot")
        self._run_dir: Path | None = None

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return probe_version(
            "copilot", binary or self.binary, env_var=BIN_ENV, supported=self.supported_versions
        )

    def build(self, req: RunRequest) -> Invocation:
        run_dir = Path(tempfile.gettempdir()) / f"stoneforge-copilot-{uuid.uuid4().hex}"
        self._run_dir = run_dir
        argv = [self.binary, *FIXED_FLAGS, *PERMISSIONS[req.permissions]]
        argv += ["--usage-output-file", str(run_dir / "usage.json")]
        for folder in req.extra_dirs:  # paths allowed beside the cwd (a plan job's folder)
            argv += ["--add-dir", str(folder)]
        if req.model:
            argv += ["--model", req.model]
        if req.resume_session:
            argv.append(f"--resume={req.resume_session}")
        elif req.session_id:  # a UUID for the new session
            argv.append(f"--session-id={req.session_id}")
        names = (*CREDENTIAL_ENV, *PASSED_ENV)
        env = {name: os.environ[name] for name in names if os.environ.get(name)}
        env.update(QUIET_ENV)
        env.update(req.extra_env)
        prompt = prompt_with_system(req)
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=prompt.encode(),
            files={run_dir / ".keep": ""},
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def new_parser(self) -> CopilotStreamParser:
        run_dir, self._run_dir = self._run_dir, None
        return CopilotStreamParser(run_dir)

    def can_resume(self) -> bool:
        return True


class CopilotStreamParser(StreamParser):
    """Reads `copilot --output-format json` lines; `finish()` reads the usage file too."""

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.last_text: str | None = None
        self.result: dict[str, Any] | None = None
        self.errors: list[dict[str, Any]] = []  # `session.error` data
        self.waiting_retry = False
        self.turns = 0

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
        kind = msg.get("type")
        data = as_dict(msg.get("data"))
        self.waiting_retry = False
        if kind == "result":
            self.result = msg
            session = msg.get("sessionId")
            if isinstance(session, str):
                self.session_id = session
                return [AgentEvent("session", {"session_id": session}, msg)]
        elif kind == "assistant.message":
            self.turns += 1
            self.num_turns = self.turns
            if isinstance(data.get("model"), str):
                self.model = data["model"]
            content = data.get("content")
            if isinstance(content, str) and content.strip():
                self.last_text = content
                return [AgentEvent("text", {"text": content}, msg)]
        elif kind == "tool.execution_start":
            return [AgentEvent("tool_call", {"name": data.get("toolName")}, msg)]
        elif kind == "tool.execution_complete":
            return [AgentEvent("tool_result", {"is_error": data.get("success") is not True}, msg)]
        elif kind == "model.call_failure":
            self.waiting_retry = data.get("statusCode") in RETRYABLE
            message = {"status": data.get("statusCode"), "message": data.get("errorMessage")}
            return [AgentEvent("warning", message, msg)]
        elif kind == "assistant.turn_retry":
            return [AgentEvent("retry", {"reason": data.get("reason")}, msg)]
        elif kind == "session.error":
            self.errors.append(data)
            return [AgentEvent("error", {"message": data.get("message")}, msg)]
        return []

    def liveness_hint(self) -> float | None:
        return RETRY_GRACE_S if self.waiting_retry else None

    def signals(self, exit_code: int | None) -> Signals:
        kinds = {str(e.get("errorType")) for e in self.errors}
        statuses = {e.get("statusCode") for e in self.errors}
        text = "\n".join(str(e.get("message") or "") for e in self.errors)
        result_exit = (self.result or {}).get("exitCode")
        return Signals(
            clean_final=self.result is not None and result_exit == 0 and exit_code == 0,
            final_text=self.last_text,
            resume_failed=self.result is None
            and bool(NO_SESSION.search("\n".join(self.stderr_tail))),
            rate_limited="rate_limit" in kinds or 429 in statuses,
            auth="authentication" in kinds or bool(statuses & {401, 403}),
            context_overflow=bool(CONTEXT.search(text)),
        )

    def on_finish(self) -> None:
        self._read_usage()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _read_usage(self) -> None:
        """Tokens from the usage file, summed over its models (`inputTokens` include cached)."""
        if self.run_dir is None:
            return
        try:
            report = json.loads((self.run_dir / "usage.json").read_text())
        except (OSError, ValueError):
            return
        metrics = as_dict(as_dict(report).get("modelMetrics"))
        for model, entry in metrics.items():
            usage = as_dict(as_dict(entry).get("usage"))
            cached = as_int(usage.get("cacheReadTokens"))
            self.usage.input_tokens += max(as_int(usage.get("inputTokens")) - cached, 0)
            self.usage.cache_read += cached
            self.usage.cache_write += as_int(usage.get("cacheWriteTokens"))
            self.usage.output_tokens += as_int(usage.get("outputTokens"))
            self.model = self.model or model

    def detail_parts(self) -> list[str]:
        parts = [f"{e.get('errorType')}: {e.get('message')}" for e in self.errors[-5:]]
        if self.result is None:
            parts.append("no result line")
        return parts
