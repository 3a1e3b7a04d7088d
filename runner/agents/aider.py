"""Aider, one message and exit: `aider --message-file F --yes-always ...` (agent-clis.md §6).

Aider prints plain text and exits 0 even when the LLM call failed, so the outcome is read from
its stdout (rate-limit, auth and token-limit messages, `Tokens: ... Cost: ...` lines) and from the
JSONL `--analytics-log` (exact tokens and cost per `message_send`, `message_send_exception`).

The message file, the analytics log and aider's history files live in a per-run directory outside
the worktree. `build()` picks it; the next `new_parser()` reads its analytics log in `finish()` and
then removes the directory (`runner.process.run_agent` calls build, then new_parser).
Aider writes a repo-map cache (`.aider.tags.cache.v*`) into the worktree: the runner should keep
`.aider*` out of commits (e.g. in `.git/info/exclude`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections import deque
from pathlib import Path
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

BIN_ENV = "STONEFORGE_AIDER_BIN"
# Provider keys litellm reads from the environment.
CREDENTIAL_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "AIDER_MODEL",
)
FIXED_FLAGS = [
    "--yes-always",
    "--no-pretty",
    "--no-stream",
    "--no-fancy-input",
    "--no-auto-commits",
    "--no-gitignore",
    "--no-check-update",
    "--no-show-release-notes",
    "--analytics-disable",
]
RATE_LIMIT = re.compile(r"rate limited you|RateLimitError|quota", re.IGNORECASE)
AUTH = re.compile(r"not able to authenticate you|AuthenticationError|check your api key", re.I)
CONTEXT = re.compile(r"has hit a token limit|exhausted context window|ContextWindowExceeded", re.I)
RETRYING = re.compile(r"Retrying in (\d+(?:\.\d+)?) seconds", re.IGNORECASE)
TOKENS = re.compile(r"^Tokens: ([\d.]+)(k?) sent.*?([\d.]+)(k?) received\.", re.IGNORECASE)
SESSION_COST = re.compile(r"Cost: \$([\d.]+) message, \$([\d.]+) session", re.IGNORECASE)
EDIT = re.compile(r"^Applied edit to (.+)$")
META = re.compile(
    r"^(Aider v|Main model:|Model:|Weak model:|Git repo:|Repo-map:|Tokens:|Applied edit to|"
    r"Added .* to the chat|Retrying in|Warning|https?://|Use /help)"
)


class AiderAdapter:
    name = "aider"
    supported_versions = ">=0.86,<1"
    cumulative_usage = False  # never resumed; `Cost: ... session` is this process's
    credential_env = CREDENTIAL_ENV
    bin_env = BIN_ENV

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get(BIN_ENV, "aider")
        self._run_dir: Path | None = None

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return probe_version(
            "aider", binary or self.binary, env_var=BIN_ENV, supported=self.supported_versions
        )

    def build(self, req: RunRequest) -> Invocation:
        run_dir = Path(tempfile.gettempdir()) / f"stoneforge-aider-{uuid.uuid4().hex}"
        self._run_dir = run_dir
        files = {run_dir / "message.md": req.prompt}
        argv = [self.binary, "--message-file", str(run_dir / "message.md"), *FIXED_FLAGS]
        argv += ["--analytics-log", str(run_dir / "analytics.jsonl")]
        argv += ["--chat-history-file", str(run_dir / "chat.history.md")]
        argv += ["--input-history-file", str(run_dir / "input.history")]
        argv += ["--llm-history-file", str(run_dir / "llm.history")]
        if req.model:
            argv += ["--model", req.model]
        if req.system_append:
            files[run_dir / "instructions.md"] = req.system_append
            argv += ["--read", str(run_dir / "instructions.md")]
        env = {name: os.environ[name] for name in CREDENTIAL_ENV if os.environ.get(name)}
        env.update(req.extra_env)
        return Invocation(
            argv=argv,
            env=env,
            cwd=req.workdir,
            stdin=None,
            files=files,
            allowed_secrets=frozenset(CREDENTIAL_ENV),
        )

    def new_parser(self) -> AiderOutputParser:
        run_dir, self._run_dir = self._run_dir, None
        return AiderOutputParser(run_dir)

    def can_resume(self) -> bool:
        return False  # `--restore-chat-history` is lossy; every run starts fresh


class AiderOutputParser:
    """Reads aider's text output and, at the end, its analytics log."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self.usage = Usage()
        self.text: deque[str] = deque(maxlen=200)
        self.edits: list[str] = []
        self.messages_sent = 0
        self.signals: deque[str] = deque(maxlen=20)  # rate / auth / context lines, in order
        self.exceptions: list[str] = []
        self.retry_wait_s: float | None = None
        self.stderr_tail: deque[str] = deque(maxlen=20)

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        line = line.rstrip()
        if not line.strip():
            return []
        self.retry_wait_s = None
        if match := RETRYING.search(line):
            self.retry_wait_s = float(match.group(1))
            return [AgentEvent("retry", {"delay_s": self.retry_wait_s}, line)]
        if match := TOKENS.search(line):
            self.messages_sent += 1
            self.signals.clear()  # a completed LLM call clears earlier failures
            self.usage.input_tokens += _count(match.group(1), match.group(2))
            self.usage.output_tokens += _count(match.group(3), match.group(4))
            if cost := SESSION_COST.search(line):
                self.usage.cost_usd = float(cost.group(2))
            return [AgentEvent("usage", {"cost_usd": self.usage.cost_usd}, line)]
        if match := EDIT.match(line):
            self.edits.append(match.group(1))
            return [AgentEvent("tool_call", {"name": "edit", "input": {"path": match[1]}}, line)]
        if RATE_LIMIT.search(line) or AUTH.search(line) or CONTEXT.search(line):
            self.signals.append(line)
            return [AgentEvent("error", {"message": line}, line)]
        if not META.match(line):
            self.text.append(line)
            return [AgentEvent("text", {"text": line}, line)]
        return []

    def feed_stderr(self, line: str) -> list[AgentEvent]:
        if line.strip():
            self.stderr_tail.append(line[:2000])
        return []

    def liveness_hint(self) -> float | None:
        return self.retry_wait_s

    def _read_analytics(self) -> None:
        """Exact usage from `message_send` events (replaces the rounded stdout numbers)."""
        if self.run_dir is None:
            return
        try:
            lines = (self.run_dir / "analytics.jsonl").read_text().splitlines()
        except OSError:
            return
        sends = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            props = _dict(entry.get("properties")) if isinstance(entry, dict) else {}
            event = entry.get("event") if isinstance(entry, dict) else None
            if event == "message_send":
                sends.append(props)
            elif event == "message_send_exception":
                self.exceptions.append(str(props.get("exception") or "exception"))
        if sends:
            self.usage.input_tokens = sum(_int(p.get("prompt_tokens")) for p in sends)
            self.usage.output_tokens = sum(_int(p.get("completion_tokens")) for p in sends)
            total = sends[-1].get("total_cost")
            if isinstance(total, int | float) and not isinstance(total, bool):
                self.usage.cost_usd = float(total)

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result:
        self._read_analytics()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if killed_by:
            return killed_result(killed_by, exit_code=exit_code, detail=self._detail())
        outcome, reason = self._classify(exit_code)
        return Result(
            outcome=outcome,
            reason=reason,
            final_text="\n".join(self.text).strip() or None,
            num_turns=self.messages_sent or None,
            usage=self.usage,
            exit_code=exit_code,
            detail=None if outcome is Outcome.COMPLETED else self._detail(),
        )

    def _classify(self, exit_code: int | None) -> tuple[Outcome, str]:
        signals = "\n".join(self.signals)
        if RATE_LIMIT.search(signals):
            return Outcome.RATE_LIMITED, "quota"
        if AUTH.search(signals):
            return Outcome.FAILED, "auth"
        if CONTEXT.search(signals):
            return Outcome.HANDOFF_NEEDED, "prompt_too_long"
        if exit_code == 0 and self.messages_sent and not self.exceptions:
            if not (self.text or self.edits):
                return Outcome.FAILED, "empty_result"
            return Outcome.COMPLETED, "success"
        return Outcome.FAILED, "crash"

    def _detail(self) -> str | None:
        parts = list(self.signals)
        parts += [f"exception: {e}" for e in self.exceptions[-5:]]
        if not self.messages_sent:
            parts.append("no LLM call completed")
        if self.stderr_tail:
            parts.append("stderr:\n" + "\n".join(self.stderr_tail))
        return "\n".join(parts) or None


def _count(number: str, k: str) -> int:
    return int(float(number) * (1000 if k else 1))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
