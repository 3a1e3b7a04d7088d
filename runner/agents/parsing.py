"""What every agent CLI's output parser shares: the classification rules, written once.

A parser subclasses ``StreamParser``. It reads its CLI's lines (``on_message`` for JSON-lines
CLIs, or its own ``feed_stdout`` for a text CLI), and at the end says what it saw as
``Signals``; ``finish()`` applies the rules below in order and builds the ``Result``. Each
adapter adds only what its CLI does differently: how a line reads, which signals it shows, what
its detail adds, and (``on_finish``) what it reads or removes once the process is gone.

The rules, first match wins (the one statement of them; runner.agents.base points here):

1. killed by the runner -> FAILED (``timeout`` / ``stalled`` / ``cancelled``), or HANDOFF_NEEDED
   ``context`` when a context-near-full signal was seen before a kill that was not a cancel;
2. an outcome the agent declared itself (the ``command`` adapter's result line, the demo
   script's status) -> that outcome and reason, as declared;
3. a resumed run that found no session -> FAILED ``resume_failed`` (the runner starts afresh);
4. a rate or quota signal with no later success -> RATE_LIMITED ``quota`` (``retry_at`` if known);
5. an auth or billing signal -> FAILED ``auth``;
6. context overflow -> HANDOFF_NEEDED ``prompt_too_long``;
7. a turn or budget cap -> HANDOFF_NEEDED ``max_turns`` / ``budget``;
8. a clean final event -> COMPLETED ``success`` (no final text: FAILED ``empty_result``);
9. anything else -> FAILED ``crash``, with the last stderr lines in the detail.

``runner.agents.base.resume_failed()`` also counts a crash before any session began as a failed
resume.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from runner.agents.base import AgentEvent, Outcome, Result, Usage

STDERR_LINES = 20
LINE_KEPT = 2000  # characters of one stderr line kept for the detail


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_number(value: object) -> float | None:
    """A JSON number as a float (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def as_int(value: object) -> int:
    """A JSON number as an int, 0 when absent or not a number."""
    number = as_number(value)
    return int(number) if number is not None else 0


def json_object(line: str) -> dict[str, Any] | None:
    """One JSON-lines record, or None for anything that is not a JSON object."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class Signals:
    """What a finished run showed, in the rules' terms."""

    clean_final: bool = False
    final_text: str | None = None
    resume_failed: bool = False
    rate_limited: bool = False
    retry_at: datetime | None = None
    auth: bool = False
    context_overflow: bool = False
    near_full: bool = False
    cap: Literal["max_turns", "budget"] | None = None
    # Rule 2: the agent's own word on how the run ended (outcome, reason).
    declared: tuple[Outcome, str] | None = None


def classify(signals: Signals, killed_by: str | None) -> tuple[Outcome, str]:
    """The rules of this module's docstring, in order."""
    if killed_by:
        if signals.near_full and killed_by != "cancelled":
            return Outcome.HANDOFF_NEEDED, "context"
        return Outcome.FAILED, killed_by
    if signals.declared is not None:
        return signals.declared
    if signals.resume_failed:
        return Outcome.FAILED, "resume_failed"
    if signals.rate_limited:
        return Outcome.RATE_LIMITED, "quota"
    if signals.auth:
        return Outcome.FAILED, "auth"
    if signals.context_overflow:
        return Outcome.HANDOFF_NEEDED, "prompt_too_long"
    if signals.cap is not None:
        return Outcome.HANDOFF_NEEDED, signals.cap
    if signals.clean_final:
        if not (signals.final_text or "").strip():
            return Outcome.FAILED, "empty_result"
        return Outcome.COMPLETED, "success"
    return Outcome.FAILED, "crash"


class StreamParser:
    """The shared half of an adapter's parser (``runner.agents.base.StreamParser``)."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.model: str | None = None
        self.usage = Usage()
        self.num_turns: int | None = None
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        self.garbage = 0
        self.exit_code: int | None = None  # set by finish(), for signals() and the detail

    # -- feeding ---------------------------------------------------------------------------

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        """JSON-lines CLIs: each object goes to ``on_message``; anything else is counted."""
        line = line.strip()
        if not line:
            return []
        msg = json_object(line)
        if msg is None:
            self.garbage += 1
            return [AgentEvent("warning", {"message": "unparsed output line"}, line[:LINE_KEPT])]
        return self.on_message(msg)

    def on_message(self, msg: dict[str, Any]) -> list[AgentEvent]:
        return []

    def feed_stderr(self, line: str) -> list[AgentEvent]:
        if not line.strip():
            return []
        self.stderr_tail.append(line[:LINE_KEPT])
        return self.on_stderr(line)

    def on_stderr(self, line: str) -> list[AgentEvent]:
        return []

    def liveness_hint(self) -> float | None:
        return None

    # -- finishing -------------------------------------------------------------------------

    def signals(self, exit_code: int | None) -> Signals:
        raise NotImplementedError

    def detail_parts(self) -> list[str]:
        """What the CLI said about a run that did not complete (the stderr tail follows)."""
        return []

    def detail(self) -> str | None:
        parts = [p for p in self.detail_parts() if p]
        if self.stderr_tail:
            parts.append("stderr:\n" + "\n".join(self.stderr_tail))
        return "\n".join(parts) or None

    def on_finish(self) -> None:
        """First thing ``finish()`` does: read what the CLI left in files (a usage report, an
        analytics log) and remove what the run made. Nothing by default."""

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result:
        self.exit_code = exit_code
        self.on_finish()
        # A killed run's own signals are cut short: only a near-full context counts then.
        signals = Signals(near_full=self.near_full()) if killed_by else self.signals(exit_code)
        outcome, reason = classify(signals, killed_by)
        return Result(
            outcome=outcome,
            reason=reason,
            session_id=self.session_id,
            final_text=signals.final_text,
            num_turns=self.num_turns,
            usage=self.usage,
            retry_at=signals.retry_at if outcome is Outcome.RATE_LIMITED else None,
            exit_code=exit_code,
            detail=None if outcome is Outcome.COMPLETED else self.detail(),
            model=self.model,
        )

    def near_full(self) -> bool:
        """Whether a context-near-full signal (a compaction) was seen: rule 1's handoff."""
        return False
