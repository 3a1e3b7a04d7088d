"""The agent adapter contract (research/agent-clis.md §8).

An adapter knows one coding-agent CLI: how to launch it headless (`build`) and how to read what
it prints (`new_parser`). It owns no process: `runner.process` spawns the `Invocation`, pumps the
output into the parser and asks the parser to classify the run with `finish()`.

Every parser subclasses `runner.agents.parsing.StreamParser`, where the classification rules are
stated and applied once (killed, declared, resume failed, rate limited, auth, context overflow,
cap, clean final, crash; first match wins). An adapter's parser only says which of those signals
its CLI showed. `resume_failed()` below tells the runner when to start afresh instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

Permissions = Literal["read_only", "workspace_write", "full_unattended"]


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    HANDOFF_NEEDED = "handoff_needed"
    RATE_LIMITED = "rate_limited"


@dataclass
class RunRequest:
    """What the runner asks an agent to do; built from a job."""

    task_id: str
    prompt: str
    workdir: Path
    model: str | None = None
    system_append: str | None = None
    resume_session: str | None = None
    session_id: str | None = None
    max_turns: int | None = None
    budget_usd: float | None = None
    permissions: Permissions = "workspace_write"
    allowed_tools: list[str] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: directories outside ``workdir`` the agent may write to (a plan job's plan file)
    extra_dirs: list[Path] = field(default_factory=list)
    #: files the agent is to write, for a CLI that edits only the files it is given (aider)
    edit_files: list[Path] = field(default_factory=list)


@dataclass
class Invocation:
    """What the runner will spawn.

    `env` holds only the adapter's additions; `runner.process` builds the rest of the environment
    from scratch. Names in `env` that look like secrets are dropped unless listed in
    `allowed_secrets` (the agent CLI's own credentials).
    """

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdin: bytes | None = None  # None -> DEVNULL; bytes -> written, then stdin is closed
    files: dict[Path, str] = field(default_factory=dict)
    allowed_secrets: frozenset[str] = frozenset()


@dataclass
class Usage:
    """Tokens as billed: ``input_tokens`` not read from a cache (``cache_read``/``cache_write``
    are the cached ones), ``output_tokens`` every billed output token, reasoning included
    (``reasoning_tokens`` says how many of them were reasoning)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None: the CLI does not report cost
    # Set when the runner estimated cost_usd from the tokens (runner.agents.pricing): how.
    cost_note: str | None = None
    context_tokens: int | None = None  # latest known context occupancy


EventKind = Literal[
    "session",
    "text",
    "tool_call",
    "tool_result",
    "retry",
    "compaction",
    "rate_limit_info",
    "warning",
    "usage",
    "error",
]


@dataclass
class AgentEvent:
    """A normalized progress event, for logs and progress views."""

    kind: EventKind
    data: dict[str, Any]
    raw: dict[str, Any] | str | None = None


@dataclass
class Result:
    outcome: Outcome
    reason: str  # success, max_turns, budget, prompt_too_long, quota, auth, timeout, stalled, crash
    session_id: str | None = None
    final_text: str | None = None
    num_turns: int | None = None
    usage: Usage = field(default_factory=Usage)
    retry_at: datetime | None = None
    exit_code: int | None = None
    detail: str | None = None
    # The model that answered, as the CLI names it: prices a run whose CLI reports no cost
    # (runner.agents.pricing).
    model: str | None = None


@dataclass
class ProbeInfo:
    version: str | None
    flags: frozenset[str] = frozenset()


class OutputSink(Protocol):
    """What a supervised agent's output is fed into, line by line (`runner.process.supervise`).
    A setup or test command's output goes into `runner.process.CappedOutput` instead."""

    def feed_stdout(self, line: str) -> list[AgentEvent]: ...
    def feed_stderr(self, line: str) -> list[AgentEvent]: ...
    def liveness_hint(self) -> float | None:
        """Seconds to extend the stall timer by (for example while the CLI waits to retry)."""
        ...


class StreamParser(OutputSink, Protocol):
    """An agent CLI's output parser: an ``OutputSink`` that classifies the run at the end."""

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result: ...


class AgentAdapter(Protocol):
    name: str
    supported_versions: str
    # True when the CLI reports a resumed session's tokens and cost as the session's running
    # total (the runner then records per-run differences, runner.usage).
    cumulative_usage: bool
    # Whose price list prices the tokens when the CLI reports no cost (None: by the model's
    # name, runner.agents.pricing.provider_of).
    provider: str | None
    # Optional, True when absent: ``writes_outside_workdir = False`` says the CLI cannot write
    # outside its working directory, even to ``extra_dirs`` (aider): a plan job then gives it
    # its plan file inside the worktree, in ``edit_files`` (runner.planning).

    @property
    def credential_env(self) -> tuple[str, ...]:
        """The variables of the runner's environment this adapter hands its CLI when they are set:
        its credentials and their settings (base URL, config directory). The demo passes these,
        and `bin_env`, from its caller's environment to the runner it starts, and nothing else."""
        ...

    @property
    def bin_env(self) -> str | None:
        """The variable that overrides the CLI's executable (None: the adapter runs no CLI)."""
        ...

    def probe(self, binary: str | None = None) -> ProbeInfo: ...
    def build(self, req: RunRequest) -> Invocation: ...
    def new_parser(self) -> StreamParser: ...
    def can_resume(self) -> bool: ...


def resume_failed(result: Result) -> bool:
    """Whether a resumed run failed at once, before the agent could work (start afresh then)."""
    if result.outcome is not Outcome.FAILED:
        return False
    return result.reason == "resume_failed" or (
        result.reason == "crash" and result.session_id is None
    )


def prompt_with_system(req: RunRequest) -> str:
    """The prompt with ``system_append`` before it, for CLIs with no flag that appends to their
    system prompt (gemini, opencode, copilot)."""
    if req.system_append:
        return f"{req.system_append}\n\n{req.prompt}"
    return req.prompt
