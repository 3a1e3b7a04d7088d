"""Agent transcripts on the bot: storing a runner's upload, the links, the attempt history.

A runner uploads each agent try's transcript (already redacted and capped, see
``runner/transcripts.py``) to ``POST /runner/jobs/{job_id}/transcripts``. The bot masks it once
more, puts one JSON header line in front of it (task, attempt, try, agent, outcome, seconds,
tokens, cost: what the transcripts table has no columns for), and stores it under an
unguessable id. ``GET /transcripts/{id}`` serves it: the link is the capability.

The header lines are also the task's attempt history: ``attempt_rows`` turns a task's
transcripts into one row per run of the agent (one job), for the pull request body.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import threading
from collections.abc import Iterable
from typing import Any

from bot.core.model import IssueRef, Task
from bot.core.protocol import CompletedResult, JobResult, TranscriptUpload
from bot.core.redact import redact
from bot.core.render_pull import AttemptRow, render_pull_body
from bot.core.render_text import TranscriptLink
from bot.ports import TranscriptReader
from bot.store import Store, TranscriptRecord

MAX_UPLOAD_BYTES = 4 * 1024 * 1024  # a request body; runners send at most 2 MB of text
ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
HEADER_KEY = "stoneforge_transcript"
_OUTCOME_WORDS = {"handoff_needed": "handoff", "rate_limited": "rate limited"}
_HEADERS: dict[str, dict[str, Any]] = {}  # transcript id -> its header line, oldest first
_HEADERS_KEPT = 4096
_HEADERS_LOCK = threading.Lock()


def url(public_url: str, transcript_id: str) -> str:
    return f"{public_url.rstrip('/')}/transcripts/{transcript_id}"


def add(store: Store, task: Task, runner: str | None, upload: TranscriptUpload, now: float) -> str:
    """Store one try's transcript for ``task``'s current attempt; returns its new id."""
    agent = _text(upload.agent, 64)
    header = {
        HEADER_KEY: 1,
        "task": str(task.ref),
        "attempt": task.attempt,
        "dispatched_at": task.dispatched_at,  # with the attempt, names the job
        "try": upload.try_,
        "agent": agent,
        "runner": runner,
        "outcome": upload.outcome.value,
        "reason": _text(upload.reason, 200),
        "seconds": upload.seconds,
        "input_tokens": upload.usage.input_tokens,
        "output_tokens": upload.usage.output_tokens,
        "cost_usd": upload.usage.cost_usd,
        "cost_note": upload.usage.cost_note,
    }
    body = redact(upload.text)
    content = (json.dumps(header) + "\n" + body).encode("utf-8", "replace")  # lone surrogates
    record = TranscriptRecord(
        id=secrets.token_urlsafe(24),
        repo=task.repo,
        number=task.number,
        attempt=task.attempt,
        runner=runner,
        agent=agent,
        created_at=now,
        size=len(content),
    )
    store.add_transcript(record, content)
    return record.id


def get(store: TranscriptReader, transcript_id: str) -> bytes | None:
    """A stored transcript's text, or None (also for anything that is not an id)."""
    if not ID_RE.fullmatch(transcript_id):
        return None
    found = store.transcript(transcript_id)
    return None if found is None else found[1]


def links(store: TranscriptReader, public_url: str, ref: IssueRef) -> tuple[TranscriptLink, ...]:
    """Every transcript of the task's agents, oldest first."""
    return tuple(link for _, link, _ in _entries(store, public_url, ref))


def attempt_rows(
    store: TranscriptReader, public_url: str, task: Task, current: AttemptRow | None = None
) -> list[AttemptRow]:
    """The task's runs, oldest first: one row per job, from its transcripts' headers.

    ``current`` is the job that just reported (``task`` is still its running record): it
    replaces what the transcripts say about that job, keeping their links, or is appended
    when none of its transcripts arrived.
    """
    runs: list[list[tuple[TranscriptRecord, TranscriptLink, dict[str, Any]]]] = []
    for entry in _entries(store, public_url, task.ref):
        # One row per job: its attempt number and when it was dispatched (a rate-limited job
        # gives its attempt number back and a relabeled task starts again at 1, so the number
        # alone may repeat).
        if runs and _job_key(runs[-1][-1]) == _job_key(entry):
            runs[-1].append(entry)
        else:
            runs.append([entry])
    rows = [_row(run) for run in runs]
    if current is not None:
        mine = (current.attempt, task.dispatched_at)
        if runs and _job_key(runs[-1][0]) == mine:
            rows[-1] = _merge(current, rows[-1])
        else:
            rows.append(current)
    return rows


def _job_key(entry: tuple[TranscriptRecord, TranscriptLink, dict[str, Any]]) -> tuple[Any, ...]:
    record, _, header = entry
    return record.attempt, header.get("dispatched_at")


def pull_body(
    store: TranscriptReader,
    public_url: str,
    task: Task,
    result: CompletedResult,
    *,
    agent: str | None,
    total_seconds: float | None,
    total_cost_usd: float | None,
) -> str:
    """The pull request body after ``task``'s running job reported ``result`` (completed)."""
    rows = attempt_rows(store, public_url, task, reported_row(task, result, agent))
    if not public_url:
        rows = [dataclasses.replace(row, transcripts=()) for row in rows]
    return render_pull_body(
        task.number,
        redact(result.summary or ""),  # the agent's words: may quote a secret
        rows,
        total_seconds=total_seconds,
        total_cost_usd=total_cost_usd,
    )


def reported_row(task: Task, result: JobResult, agent: str | None) -> AttemptRow:
    """The row for the job that reported ``result``."""
    outcome: str = result.outcome
    reason = str(result.reason)
    if reason not in ("", "success", outcome):
        outcome = f"{outcome} ({reason[:80]})"
    return AttemptRow(
        attempt=task.attempt,
        tries=len(result.attempt_log) or None,
        outcome=outcome,
        agent=agent,
        seconds=result.agent_seconds,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost_usd=result.usage.cost_usd,
        cost_note=result.usage.cost_note,
    )


def _entries(
    store: TranscriptReader, public_url: str, ref: IssueRef
) -> list[tuple[TranscriptRecord, TranscriptLink, dict[str, Any]]]:
    out = []
    for record in store.transcripts_for(ref):
        header = _HEADERS.get(record.id)
        if header is None:  # a transcript never changes: read its header once
            found = store.transcript(record.id)
            header = _header(found[1]) if found else {}
            with _HEADERS_LOCK:  # callers run in worker threads
                _HEADERS[record.id] = header
                while len(_HEADERS) > _HEADERS_KEPT:
                    _HEADERS.pop(next(iter(_HEADERS)))
        number = _int(header.get("try")) or 1
        link = TranscriptLink(record.attempt, number, url(public_url, record.id))
        out.append((record, link, header))
    return out


def _header(content: bytes) -> dict[str, Any]:
    first = content.split(b"\n", 1)[0]
    try:
        data = json.loads(first)
    except ValueError:
        return {}
    return data if isinstance(data, dict) and data.get(HEADER_KEY) else {}


def _row(run: list[tuple[TranscriptRecord, TranscriptLink, dict[str, Any]]]) -> AttemptRow:
    headers = [h for _, _, h in run]
    last = headers[-1]
    outcome = _OUTCOME_WORDS.get(str(last.get("outcome")), last.get("outcome"))
    reason = last.get("reason")
    if outcome and reason and reason not in ("success", outcome):
        outcome = f"{outcome} ({reason})"
    return AttemptRow(
        attempt=run[0][0].attempt,
        tries=len(run),
        outcome=outcome,
        agent=last.get("agent") or run[-1][0].agent,
        seconds=_sum(h.get("seconds") for h in headers),
        input_tokens=_sum(h.get("input_tokens") for h in headers),
        output_tokens=_sum(h.get("output_tokens") for h in headers),
        cost_usd=_sum(h.get("cost_usd") for h in headers),
        cost_note=_notes(h.get("cost_note") for h in headers),
        transcripts=tuple(link for _, link, _ in run),
    )


def _notes(notes: Iterable[object]) -> str | None:
    """The runs' cost notes, each once (a header from before notes existed has none)."""
    kept = [n for n in dict.fromkeys(notes) if isinstance(n, str) and n]
    return "; ".join(kept) or None


def _merge(current: AttemptRow, seen: AttemptRow) -> AttemptRow:
    """What the job reported, with the transcripts' links and their facts where it was silent."""
    known = {
        f.name: getattr(seen, f.name)
        for f in dataclasses.fields(AttemptRow)
        if getattr(current, f.name) in (None, ())
    }
    return dataclasses.replace(current, **known)


def _sum(values: Any) -> Any:
    known = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(known) if known else None


def _text(value: Any, limit: int) -> str | None:
    return redact(str(value))[:limit] if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
