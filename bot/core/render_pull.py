"""The task's pull request body (``render_pull_body``): it closes the issue, carries the
agent's summary, and tables the task's attempts (tries, outcome, agent, time, tokens, cost,
transcript links) with the total; it is rewritten whenever a later attempt completes on the
same branch.

Pure: values in, text out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.render_text import TranscriptLink, cell, code, format_cost, format_duration

PULL_MARKER = "<!-- stoneforge:pull -->"
_SUMMARY_MAX = 20_000  # characters of the agent's summary in a pull request body


@dataclass(frozen=True)
class AttemptRow:
    """One run of the task's agent (one job) as the pull request lists it; None: not known."""

    attempt: int
    tries: int | None = None
    outcome: str | None = None  # "completed", "handoff (max_turns)", ...
    agent: str | None = None
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    transcripts: tuple[TranscriptLink, ...] = ()
    #: set when the runner estimated the cost from tokens (the CLI reports none): how
    cost_note: str | None = None


def render_pull_body(
    issue: int,
    summary: str,
    attempts: Sequence[AttemptRow],
    *,
    total_seconds: float | None = None,
    total_cost_usd: float | None = None,
) -> str:
    """The task's pull request body: closes the issue, the summary, the attempts and totals."""
    summary = summary.strip()
    if len(summary) > _SUMMARY_MAX:
        summary = summary[:_SUMMARY_MAX] + "…"
    parts = [f"Closes #{issue}"]
    if summary:
        parts.append(summary)
    if attempts:
        header = (
            "| Attempt | Tries | Outcome | Agent | Agent time | Tokens in / out | Cost "
            "| Transcripts |\n| ---: | ---: | --- | --- | ---: | ---: | ---: | --- |"
        )
        parts.append("### Attempts\n\n" + header + "\n" + "\n".join(map(_attempt_line, attempts)))
        notes = list(dict.fromkeys(row.cost_note for row in attempts if row.cost_note))
        if notes:
            parts.append("\n".join(f"≈ Cost {cell(note)}." for note in notes))
    total = []
    if total_seconds is not None:
        total.append(f"{format_duration(total_seconds)} of agent time")
    if total_cost_usd is not None:
        total.append(format_cost(total_cost_usd))
    if total:
        parts.append("**Total:** " + " · ".join(total))
    parts.append(f"{PULL_MARKER}\n_Opened by Stoneforge; updated when a later attempt completes._")
    return "\n\n".join(parts) + "\n"


def _attempt_line(row: AttemptRow) -> str:
    def known(value: object, text: str) -> str:
        return "—" if value is None else text

    tokens = "—"
    if row.input_tokens is not None or row.output_tokens is not None:
        tokens = f"{row.input_tokens or 0:,} / {row.output_tokens or 0:,}"
    links = ", ".join(f"[try {t.try_number}]({t.url})" for t in row.transcripts) or "—"
    cells = [
        str(row.attempt),
        known(row.tries, str(row.tries)),
        cell(row.outcome or "—"),
        known(row.agent, code(cell(row.agent or ""))),
        known(row.seconds, format_duration(row.seconds or 0.0)),
        tokens,
        known(row.cost_usd, ("≈ " if row.cost_note else "") + format_cost(row.cost_usd or 0.0)),
        links,
    ]
    return "| " + " | ".join(cells) + " |"
