"""Gemini CLI, headless: `gemini -p "" --output-format stream-json --skip-trust -m M`.

What the pinned binary (0.61.0) needs (agent-clis.md §5), as run against a scripted Gemini API
(tests/conformance/test_gemini.py, docs/agents.md):

- A settings file in the agent's private HOME (`~/.gemini/settings.json`, written through
  `Invocation.files`): the auth type (with `GOOGLE_GEMINI_BASE_URL` set and none chosen, 0.61
  picks `gateway` and refuses it, exit 41), folder trust, auto-update, usage statistics and
  telemetry off, the CLI's own retry count (`general.maxAttempts`), and for `workspace_write` the
  shell tool allowed (`auto_edit` alone leaves `run_shell_command` unregistered in headless runs).
- Always `-m`: without it the CLI routes through a classifier call to another model first.
- `--approval-mode` (`-y` is deprecated): `plan` (read only), `auto_edit` (+ shell), `yolo`.

We read `stream-json`: it streams (the stall timer sees progress), names the session up front and
ends with one `result` event, also on fatal errors. An API error ends the run with `result`
`status: "error"`, `error.type: "unknown"` and the API's error in `error.message`, and the CLI
exits with the HTTP status modulo 256 (429 -> 173, 401 -> 145, 400 -> 144, 500 -> 244). The
prompt goes on stdin with `-p ""` (Gemini appends `-p` text to stdin); `--skip-trust` because
every fresh worktree is an untrusted folder. Gemini has no system-prompt append flag, so extra
instructions are prepended to the prompt. It reports no cost: the runner prices the tokens of
`Result.model` (runner.agents.pricing).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.agents.base import AgentEvent, Invocation, ProbeInfo, RunRequest, prompt_with_system
from runner.agents.parsing import Signals, StreamParser, as_dict, as_int
from runner.agents.probe import probe_version

BIN_ENV = "STONEFORGE_GEMINI_BIN"
# The CLI's credentials; the base URL travels with them (a gateway, or a test's scripted server).
CREDENTIAL_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")
PASSED_ENV = (
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_GCA",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_VERTEX_BASE_URL",
)
# The CLI relaunches itself in a child node with a bigger heap unless told not to: twice the
# start-up (3.5 s instead of 6.5 s on a loaded 2-core box, silent all along), for a heap that
# node's default already sizes from the machine's memory.
QUIET_ENV = {"GEMINI_CLI_NO_RELAUNCH": "true"}
DEFAULT_MODEL = "gemini-2.5-pro"
DEFAULT_MAX_ATTEMPTS = 3  # the CLI's own retries of a 429/5xx before the run fails
SETTINGS_FILE = Path(".gemini") / "settings.json"  # relative: inside the agent's HOME
APPROVAL = {"read_only": "plan", "workspace_write": "auto_edit", "full_unattended": "yolo"}
SHELL_TOOL = "run_shell_command"
# A user-tier policy (`tools.allowed` in settings does the same, deprecated since 0.61).
POLICY_FILE = Path(".gemini") / "policies" / "stoneforge.toml"

# Exit codes from packages/core/src/utils/errors.ts; an API error exits with its HTTP status.
EXIT_AUTH, EXIT_INPUT, EXIT_TURN_LIMIT = 41, 42, 53
EXIT_HTTP = {status % 256: status for status in (400, 401, 403, 429, 500, 503)}
QUOTA_ERRORS = re.compile(r"\b(TerminalQuotaError|RetryableQuotaError)\b")
RATE_LIMIT = re.compile(r"exceeded your current quota|RESOURCE_EXHAUSTED|rate.?limit", re.I)
AUTH = re.compile(
    r"API key not valid|API_KEY_INVALID|UNAUTHENTICATED|PERMISSION_DENIED|"
    r"Please set an Auth method|FatalAuthenticationError"
)
# Gemini's 400 for a prompt over the window, and the agent-session path's own check.
CONTEXT = re.compile(
    r"input token count \(\d+\) exceeds the maximum number of tokens|"
    r"context window will overflow",
    re.I,
)
TURN_LIMIT = re.compile(r"max(imum)? session turns|FatalTurnLimitedError", re.I)
# `--resume` of a session it cannot find (exit 42).
NO_SESSION = re.compile(r"invalid session identifier|error resuming session", re.I)
# The Google error embedded in `result.error.message` ("[API Error: {...}]").
API_STATUS = re.compile(r'"code":\s*(\d{3})')
# The CLI's words for a RetryInfo delay, or the API's own message.
RETRY_AFTER = re.compile(
    r"(?:Suggested retry after|Please retry in)\s+(\d+(?:\.\d+)?)(ms|s)\b", re.I
)
# stderr while the CLI waits to retry: "Attempt 1 failed: ... Retrying after 7123ms..."
RETRYING = re.compile(r"Retrying after (\d+)ms")


class GeminiAdapter:
    name = "gemini"
    credential_env = (*CREDENTIAL_ENV, *PASSED_ENV)
    bin_env = BIN_ENV
    supported_versions = ">=0.61,<1"
    cumulative_usage = False  # a resumed session's `result.stats` count this run only
    provider: str | None = "google"

    def __init__(self, binary: str | None = None, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS):
        self.binary = binary or os.environ.get(BIN_ENV, "gemini")
        self.max_attempts = max_attempts

    def probe(self, binary: str | None = None) -> ProbeInfo:
        """`gemini --version` in a throwaway HOME: even that run leaves a
        `~/.gemini/projects.json.<uuid>.tmp` behind, which the runner's own HOME should not get."""
        with tempfile.TemporaryDirectory(prefix="stoneforge-gemini-probe-") as home:
            return probe_version(
                "gemini",
                binary or self.binary,
                env_var=BIN_ENV,
                supported=self.supported_versions,
                env={**os.environ, "HOME": home, **QUIET_ENV},
            )

    def build(self, req: RunRequest) -> Invocation:
        argv = [self.binary, "-p", "", "--output-format", "stream-json", "--skip-trust"]
        argv += ["--approval-mode", APPROVAL[req.permissions]]
        argv += ["-m", req.model or DEFAULT_MODEL]
        for folder in req.extra_dirs:  # workspace roots beside the cwd (a plan job's folder)
            argv += ["--include-directories", str(folder)]
        if req.resume_session:
            argv += ["--resume", req.resume_session]
        elif req.session_id:
            argv += ["--session-id", req.session_id]
        env = {n: os.environ[n] for n in (*CREDENTIAL_ENV, *PASSED_ENV) if os.environ.get(n)}
        env.update(QUIET_ENV)
        env.update(req.extra_env)
        prompt = prompt_with_system(req)
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=prompt.encode(),
            files=self.files(req, env),
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def files(self, req: RunRequest, env: dict[str, str]) -> dict[Path, str]:
        """The settings and, for ``workspace_write``, the policy allowing the shell and the
        request's ``allowed_tools`` (``plan`` stays read only; ``yolo`` allows everything)."""
        files = {SETTINGS_FILE: json.dumps(self.settings(req, env), indent=2)}
        if req.permissions == "workspace_write":
            tools = dict.fromkeys([*(req.allowed_tools or []), SHELL_TOOL])
            files[POLICY_FILE] = policy(list(tools))
        return files

    def settings(self, req: RunRequest, env: dict[str, str]) -> dict[str, Any]:
        """The user settings the CLI runs with (it refuses to start without an auth type)."""
        settings: dict[str, Any] = {
            "security": {
                "auth": {"selectedType": auth_type(env)},
                "folderTrust": {"enabled": False},
            },
            "general": {
                "enableAutoUpdate": False,
                "enableAutoUpdateNotification": False,
                "maxAttempts": self.max_attempts,
            },
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
        }
        if req.max_turns:
            settings["model"] = {"maxSessionTurns": req.max_turns}
        return settings

    def new_parser(self) -> GeminiStreamParser:
        return GeminiStreamParser()

    def can_resume(self) -> bool:
        return True


def policy(tools: list[str]) -> str:
    """Policy-engine rules allowing ``tools`` in ``auto_edit`` (headless denies what would ask)."""
    rules = [
        f'[[rule]]\ntoolName = {json.dumps(tool)}\ndecision = "allow"\npriority = 100\n'
        'modes = ["autoEdit"]\n'
        for tool in tools
    ]
    return "\n".join(rules)


def auth_type(env: dict[str, str]) -> str:
    """`security.auth.selectedType` for the credentials the CLI gets (its own env switches)."""
    if env.get("GOOGLE_GENAI_USE_GCA") == "true":
        return "oauth-personal"
    if env.get("GOOGLE_GENAI_USE_VERTEXAI") == "true":
        return "vertex-ai"
    return "gemini-api-key"


class GeminiStreamParser(StreamParser):
    """Reads `--output-format stream-json` lines; `finish()` classifies (runner.agents.parsing)."""

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.answer: list[str] = []  # assistant text since the last tool call
        self.tool_calls = 0
        self.errors: list[str] = []  # `error` events (warnings and errors)
        self.retry_wait_s: float | None = None  # while the CLI waits to retry a call

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
        self.retry_wait_s = None
        kind = msg.get("type")
        if kind == "init":
            self.session_id = str(msg.get("session_id") or "") or None
            self.model = str(msg.get("model") or "") or None
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

    def on_stderr(self, line: str) -> list[AgentEvent]:
        if match := RETRYING.search(line):
            self.retry_wait_s = int(match.group(1)) / 1000
            return [AgentEvent("retry", {"wait_s": self.retry_wait_s, "message": line[:500]})]
        return []

    def liveness_hint(self) -> float | None:
        return self.retry_wait_s

    def _on_result(self, msg: dict[str, Any]) -> list[AgentEvent]:
        """`stats` sums each call's `usageMetadata`: `input_tokens` is every prompt token
        (cached included; `input` is the uncached part), `output_tokens` the candidates only;
        the thoughts, billed as output, are in `total_tokens` alone."""
        self.result = msg
        stats = as_dict(msg.get("stats"))
        prompt, cached = as_int(stats.get("input_tokens")), as_int(stats.get("cached"))
        candidates, total = as_int(stats.get("output_tokens")), as_int(stats.get("total_tokens"))
        thoughts = max(0, total - prompt - candidates)
        self.usage.input_tokens = as_int(stats.get("input")) or max(0, prompt - cached)
        self.usage.cache_read = cached
        self.usage.output_tokens = candidates + thoughts
        self.usage.reasoning_tokens = thoughts
        models = {name: as_dict(m) for name, m in as_dict(stats.get("models")).items()}
        if models:  # the model that did most of the work prices the run
            self.model = max(models, key=lambda n: as_int(models[n].get("total_tokens")))
        return [AgentEvent("usage", {"output_tokens": self.usage.output_tokens}, msg)]

    @property
    def final_text(self) -> str:
        return "".join(self.answer).strip()

    def _error(self) -> dict[str, Any]:
        return as_dict((self.result or {}).get("error"))

    def _said(self) -> str:
        """Everything the CLI said about a failure: the result's error, error events, stderr."""
        error = self._error()
        said = [str(error.get("type") or ""), str(error.get("message") or "")]
        return "\n".join([*said, *self.errors, *self.stderr_tail])

    def signals(self, exit_code: int | None) -> Signals:
        res = self.result or {}
        if res.get("status") == "success" and exit_code in (0, None):
            return Signals(clean_final=True, final_text=self.final_text or None)
        said = self._said()
        status = http_status(str(self._error().get("message") or ""), exit_code)
        rate_limited = status == 429 or bool(QUOTA_ERRORS.search(said) or RATE_LIMIT.search(said))
        return Signals(
            final_text=self.final_text or None,
            resume_failed=exit_code == EXIT_INPUT and bool(NO_SESSION.search(said)),
            rate_limited=rate_limited,
            retry_at=retry_at(said) if rate_limited else None,
            auth=exit_code == EXIT_AUTH or status in (401, 403) or bool(AUTH.search(said)),
            context_overflow=bool(CONTEXT.search(said)),
            cap="max_turns" if exit_code == EXIT_TURN_LIMIT or TURN_LIMIT.search(said) else None,
        )

    def detail_parts(self) -> list[str]:
        res = self.result or {}
        error = self._error()
        parts = []
        if res:
            parts.append(f"status={res.get('status')} error={error.get('type')}")
            if error.get("message"):
                parts.append(str(error["message"])[:2000])
        elif self.session_id is None:
            parts.append("no stream-json output")
        parts += [f"error event: {e}" for e in self.errors[-5:]]
        return parts


def http_status(message: str, exit_code: int | None) -> int | None:
    """The HTTP status of the API error that ended the run: from the Google error the CLI
    embeds in its message, else from the exit code (the status modulo 256)."""
    if match := API_STATUS.search(message):
        return int(match.group(1))
    return EXIT_HTTP.get(exit_code) if exit_code is not None else None


def retry_at(said: str, now: datetime | None = None) -> datetime | None:
    if not (match := RETRY_AFTER.search(said)):
        return None
    seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)
