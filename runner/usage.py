"""What one agent run spent, from the usage its CLI reports (agent-clis.md §2.2, §3.2).

Some CLIs report a resumed session's tokens and cost as the session's running total: the first
result of a resumed run already counts the runs before it. Claude Code does this, and so does
Codex from 0.155 on. Others (OpenCode, Gemini, Aider) report what this run spent. Each adapter
says which with `cumulative_usage`. For the first kind the runner keeps the last total it saw per
session and records each run's difference, so summing a job's runs never counts a token twice.

A run of a cumulative session that reported nothing (killed before its result) leaves the total
where it was: whatever it spent shows up in the next total the session reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from runner.agents.base import Usage

COUNTED = ("input_tokens", "output_tokens", "cache_read", "cache_write", "reasoning_tokens")


def usage_delta(previous: Usage | None, current: Usage) -> Usage:
    """The spend between two running totals of one session (`previous` None: a new session)."""
    if previous is None or _restarted(previous, current):
        return replace(current)
    counts = {name: getattr(current, name) - getattr(previous, name) for name in COUNTED}
    cost = current.cost_usd
    if cost is not None and previous.cost_usd is not None:
        cost = round(cost - previous.cost_usd, 9)
    return Usage(
        **counts, cost_usd=cost, cost_note=current.cost_note, context_tokens=current.context_tokens
    )


def reported(usage: Usage) -> bool:
    """Whether a run reported any usage at all (a killed run often reports none)."""
    return usage.cost_usd is not None or any(getattr(usage, name) for name in COUNTED)


def _restarted(previous: Usage, current: Usage) -> bool:
    """A running total never shrinks; one that did belongs to a session that started over."""
    if any(getattr(current, name) < getattr(previous, name) for name in COUNTED):
        return True
    return (
        current.cost_usd is not None
        and previous.cost_usd is not None
        and current.cost_usd < previous.cost_usd
    )


@dataclass
class UsageLedger:
    """The last running total seen per session id, for one job's runs."""

    totals: dict[str, Usage] = field(default_factory=dict)

    def charge(self, session_id: str | None, usage: Usage, *, cumulative: bool) -> Usage:
        """What this run spent, given what it reported; remembers the session's new total."""
        if not cumulative or session_id is None:
            return replace(usage)
        if not reported(usage):
            return Usage(context_tokens=usage.context_tokens)
        delta = usage_delta(self.totals.get(session_id), usage)
        self.totals[session_id] = replace(usage)
        return delta
