"""Aider, one message and exit: `aider --message-file F --yes-always ...` (agent-clis.md §6).

Aider prints plain text and exits 0 even when the LLM call failed, so the outcome is read from
its stdout (rate-limit, auth and token-limit messages, `Tokens: ... Cost: ...` lines) and from the
JSONL `--analytics-log` (exact tokens and cost per `message_send`, `message_send_exception`).

The message file, the analytics log and aider's history files live in a per-run directory outside
the worktree. `build()` picks it; the next `new_parser()` reads its analytics log in `finish()` and
then removes the directory (`runner.process.run_agent` calls build, then new_parser). Aider also
writes its repo-map cache (`.aider.tags.cache.v*`) into the worktree, where no flag moves it from:
`finish()` removes it when the run created it, so it never lands in a commit.

Aider has no tools: it applies the edits written in the model's reply ("whole" files or SEARCH/
REPLACE blocks, as the model's edit format says) and never runs a shell command the model suggests
(`--yes-always` answers no to those). `read_only` runs are `--dry-run`: edits are shown, not made.

Nothing but the model is reached: aider fetches litellm's price list from GitHub when its cache in
`~/.aider/caches` is missing or empty, so the adapter seeds that cache in the agent's HOME (aider
then falls back to litellm's bundled list), and `LITELLM_LOCAL_MODEL_COST_MAP` keeps litellm from
fetching the same list at import. Aider retries a failed call (a 429, a 5xx) itself, doubling a
delay from 0.25 s to 32 s (8 retries in about a minute; not configurable), printing "Retrying in
N seconds"; the OpenAI SDK's own retries under it are turned off (`max_retries: 0` for every model
in a model-settings file).
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

from runner.agents.base import AgentEvent, Invocation, ProbeInfo, RunRequest
from runner.agents.parsing import (
    Signals,
    StreamParser,
    as_dict,
    as_int,
    as_number,
    json_object,
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
    # A git-ignored file named with --file (a plan job's `.stoneforge/plan.json`) is skipped
    # without this; an ignored file the reply names is refused all the same.
    "--add-gitignore-files",
    "--no-check-update",
    "--no-show-release-notes",
    "--analytics-disable",
    "--no-show-model-warnings",
]
QUIET_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
# Aider fetches the price list when this cache is missing or empty (see the module docstring).
PRICE_CACHE = Path(".aider/caches/model_prices_and_context_window.json")  # under the HOME
PRICE_CACHE_SEED = json.dumps({"_stoneforge": "not empty, so aider uses litellm's bundled list"})
TAGS_CACHE = ".aider.tags.cache.v*"
# Every model's calls without the OpenAI SDK's own retries: aider's loop retries already, and
# the two together made 27 requests of one failing call.
MODEL_SETTINGS = "- name: aider/extra_params\n  extra_params:\n    max_retries: 0\n"
RATE_LIMIT = re.compile(r"rate limited you|RateLimitError|quota", re.IGNORECASE)
AUTH = re.compile(r"not able to authenticate you|AuthenticationError|check your api key", re.I)
CONTEXT = re.compile(r"has hit a token limit|exhausted context window|ContextWindowExceeded", re.I)
MAIN_MODEL = re.compile(r"^(?:Main model|Model): (\S+) with ")
BANNER = re.compile(r"^Aider v\d")
RETRYING = re.compile(r"Retrying in (\d+(?:\.\d+)?) seconds", re.IGNORECASE)
TOKENS = re.compile(r"^Tokens: ([\d.]+)(k?) sent.*?([\d.]+)(k?) received\.", re.IGNORECASE)
SESSION_COST = re.compile(r"Cost: \$([\d.]+) message, \$([\d.]+) session", re.IGNORECASE)
EDIT = re.compile(r"^Applied edit to (.+)$")
DRY_RUN_EDIT = re.compile(r"^Did not apply edit to (.+) \(--dry-run\)$")
META = re.compile(
    r"^(Aider v|Main model:|Model:|Weak model:|Git repo:|Repo-map:|Tokens:|Applied edit to|"
    r"Added .* to the chat|Retrying in|Warning|https?://|Use /help)"
)


class AiderAdapter:
    name = "aider"
    provider: str | None = None  # whose price list prices its tokens (pricing.py)
    supported_versions = ">=0.86,<1"
    cumulative_usage = False  # never resumed; `Cost: ... session` is this process's
    credential_env = CREDENTIAL_ENV
    bin_env = BIN_ENV
    # Aider edits only files under its repository ("... is not in the subpath of ..."): a plan
    # job gives it a plan file in the worktree's `.stoneforge/` instead (runner/planning.py), in
    # `edit_files`: a git-ignored file (`.stoneforge/` is, in the pool's repositories) it edits
    # only when named on the command line, with --add-gitignore-files.
    writes_outside_workdir = False

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or os.environ.get(BIN_ENV, "aider")
        self._run_dir: Path | None = None
        self._workdir: Path | None = None
        self._had_tags_cache = False

    def probe(self, binary: str | None = None) -> ProbeInfo:
        return probe_version(
            "aider", binary or self.binary, env_var=BIN_ENV, supported=self.supported_versions
        )

    def build(self, req: RunRequest) -> Invocation:
        run_dir = Path(tempfile.gettempdir()) / f"stoneforge-aider-{uuid.uuid4().hex}"
        self._run_dir = run_dir
        self._workdir = req.workdir
        self._had_tags_cache = any(req.workdir.glob(TAGS_CACHE))
        files = {
            run_dir / "message.md": req.prompt,
            run_dir / "model-settings.yml": MODEL_SETTINGS,
            PRICE_CACHE: PRICE_CACHE_SEED,
        }
        argv = [self.binary, "--message-file", str(run_dir / "message.md"), *FIXED_FLAGS]
        argv += ["--analytics-log", str(run_dir / "analytics.jsonl")]
        argv += ["--chat-history-file", str(run_dir / "chat.history.md")]
        argv += ["--input-history-file", str(run_dir / "input.history")]
        argv += ["--llm-history-file", str(run_dir / "llm.history")]
        argv += ["--model-settings-file", str(run_dir / "model-settings.yml")]
        for file in req.edit_files:  # in the chat from the start: aider may create and edit it
            argv += ["--file", str(file)]
        if req.permissions == "read_only":
            argv.append("--dry-run")
        if req.model:
            argv += ["--model", req.model]
        if req.system_append:
            files[run_dir / "instructions.md"] = req.system_append
            argv += ["--read", str(run_dir / "instructions.md")]
        env = {name: os.environ[name] for name in CREDENTIAL_ENV if os.environ.get(name)}
        env.update(QUIET_ENV)
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
        workdir, self._workdir = self._workdir, None
        scratch = None if workdir is None or self._had_tags_cache else workdir
        return AiderOutputParser(run_dir, tags_cache_in=scratch)

    def can_resume(self) -> bool:
        return False  # `--restore-chat-history` is lossy; every run starts fresh


class AiderOutputParser(StreamParser):
    """Reads aider's text output and, at the end, its analytics log."""

    def __init__(self, run_dir: Path | None = None, *, tags_cache_in: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.tags_cache_in = tags_cache_in  # the worktree whose repo-map cache this run made
        self.started = False  # past aider's start-up banner: what follows is the reply
        self.reply: list[str] = []  # the reply being printed
        self.last_reply: str | None = None  # the last complete reply's text
        self.edits: list[str] = []
        self.messages_sent = 0
        self.failures: deque[str] = deque(maxlen=20)  # rate / auth / context lines, in order
        self.exceptions: list[str] = []
        self.retry_wait_s: float | None = None

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        line = line.rstrip()
        if not line.strip():
            if self.reply:
                self.reply.append("")
            return []
        self.retry_wait_s = None
        if BANNER.match(line):
            self.started = True
            return []
        if match := MAIN_MODEL.match(line):
            self.model = match.group(1)
            return []
        if match := RETRYING.search(line):
            self.retry_wait_s = float(match.group(1))
            return [AgentEvent("retry", {"delay_s": self.retry_wait_s}, line)]
        if match := TOKENS.search(line):
            self.messages_sent += 1
            self.num_turns = self.messages_sent
            self.failures.clear()  # a completed LLM call clears earlier failures
            self.usage.input_tokens += _count(match.group(1), match.group(2))
            self.usage.output_tokens += _count(match.group(3), match.group(4))
            if cost := SESSION_COST.search(line):
                self.usage.cost_usd = float(cost.group(2))
            self.last_reply = "\n".join(self.reply).strip() or self.last_reply
            self.reply = []
            return [AgentEvent("usage", {"cost_usd": self.usage.cost_usd}, line)]
        if match := EDIT.match(line):
            self.edits.append(match.group(1))
            return [AgentEvent("tool_call", {"name": "edit", "input": {"path": match[1]}}, line)]
        if match := DRY_RUN_EDIT.match(line):  # read_only: the edit is refused
            data = {"name": "edit", "input": {"path": match[1]}}
            refused = AgentEvent("tool_result", {"is_error": True}, line)
            return [AgentEvent("tool_call", data, line), refused]
        if RATE_LIMIT.search(line) or AUTH.search(line) or CONTEXT.search(line):
            self.failures.append(line)
            return [AgentEvent("error", {"message": line}, line)]
        if self.started and not META.match(line):
            self.reply.append(line)
            return [AgentEvent("text", {"text": line}, line)]
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
            entry = json_object(line) or {}
            props = as_dict(entry.get("properties"))
            if entry.get("event") == "message_send":
                sends.append(props)
            elif entry.get("event") == "message_send_exception":
                self.exceptions.append(str(props.get("exception") or "exception"))
        if sends:
            self.usage.input_tokens = sum(as_int(p.get("prompt_tokens")) for p in sends)
            self.usage.output_tokens = sum(as_int(p.get("completion_tokens")) for p in sends)
            total = as_number(sends[-1].get("total_cost"))
            # Without a price aider prints no cost and logs 0: leave it unreported then.
            if total is not None and self.usage.cost_usd is not None:
                self.usage.cost_usd = total

    def on_finish(self) -> None:
        self._read_analytics()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.tags_cache_in is not None:
            for cache in self.tags_cache_in.glob(TAGS_CACHE):
                shutil.rmtree(cache, ignore_errors=True)

    def signals(self, exit_code: int | None) -> Signals:
        failures = "\n".join(self.failures)
        return Signals(
            # Aider exits 0 when every call failed: a completed call is what counts.
            clean_final=exit_code == 0 and bool(self.messages_sent) and not self.exceptions,
            final_text=self.last_reply or ("\n".join(self.edits) or None),
            rate_limited=bool(RATE_LIMIT.search(failures)),
            auth=bool(AUTH.search(failures)),
            context_overflow=bool(CONTEXT.search(failures)),
        )

    def detail_parts(self) -> list[str]:
        parts = list(self.failures)
        parts += [f"exception: {e}" for e in self.exceptions[-5:]]
        if not self.messages_sent:
            parts.append("no LLM call completed")
        return parts


def _count(number: str, k: str) -> int:
    return int(float(number) * (1000 if k else 1))
