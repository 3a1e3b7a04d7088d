"""One agent try's transcript, redacted and capped, sent to the bot.

The runner tees each agent run's output to ``logs/<job>-<run>/try<N>-run<K>/`` (``stdout.jsonl``
and ``stderr.log``, ``runner/process.py``). Once the runner has judged the try, ``upload`` posts
the stdout JSONL and the tail of stderr, with the runner's verdict, to
``POST /runner/jobs/{job_id}/transcripts``:

- **redacted before it leaves the machine**: every secret-shaped string
  (``bot.core.redact``) and each exact secret the caller names (the job's repository token,
  the runner's own token) is masked;
- **capped** at ``MAX_BYTES``: a longer stdout keeps its head and its tail, cut at line
  boundaries, with a marker line saying how much was left out; stderr keeps its last
  ``STDERR_TAIL_BYTES``. Only the kept parts (plus ``SLACK_BYTES`` around each cut, so a
  secret straddling a cut is still masked whole) are ever read into memory.

A failed upload is logged and otherwise ignored: a transcript never fails a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import httpx

from bot.core.protocol import CLAIM_SECRET_HEADER, TranscriptUpload, TryOutcome
from bot.core.protocol import Usage as WireUsage
from bot.core.redact import redact
from runner.agents.base import Result, Usage

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
STDERR_TAIL_BYTES = 64 * 1024
SLACK_BYTES = 64 * 1024
MARKER_ROOM = 200  # bytes kept free for the "left out" marker line
STDOUT_FILE = "stdout.jsonl"
STDERR_FILE = "stderr.log"
STDERR_HEADER = "----- stderr (tail) -----"


def marker(omitted: int) -> str:
    return f"[stoneforge: about {omitted} bytes of output left out here]\n"


def cap(text: str, limit: int, *, keep_head: bool = True) -> str:
    """``text`` if it fits in ``limit`` UTF-8 bytes, else its head and tail with a marker.

    With ``keep_head=False`` only the tail is kept. Cuts fall on line boundaries when a line
    break is near, so JSONL lines are kept whole.
    """
    size = len(text.encode())
    if size <= limit:
        return text
    budget = max(0, limit - MARKER_ROOM)
    head = _head(text, budget // 2) if keep_head else ""
    tail = _tail(text, budget - len(head.encode()))
    omitted = size - len(head.encode()) - len(tail.encode())
    return head + marker(omitted) + tail


def read_capped(
    path: Path, limit: int, *, secrets: Iterable[str] = (), keep_head: bool = True
) -> str:
    """The redacted text of ``path``, capped at about ``limit`` bytes ("" when missing)."""
    secrets = tuple(secrets)
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    if size == 0 or limit <= 0:
        return ""
    with path.open("rb") as fh:
        if size <= limit + 2 * SLACK_BYTES:
            return cap(redact(_decode(fh.read()), secrets), limit, keep_head=keep_head)
        budget = max(0, limit - MARKER_ROOM)
        head = ""
        if keep_head:
            head = _head(redact(_decode(fh.read(budget // 2 + SLACK_BYTES)), secrets), budget // 2)
        tail_bytes = budget - len(head.encode())
        fh.seek(max(0, size - tail_bytes - SLACK_BYTES))
        tail = _tail(redact(_decode(fh.read()), secrets), tail_bytes)
    omitted = max(0, size - len(head.encode()) - len(tail.encode()))
    return head + marker(omitted) + tail


def collect(transcript_dir: Path, *, secrets: Iterable[str] = (), limit: int = MAX_BYTES) -> str:
    """A try's transcript: stdout (JSONL) then, if any, the tail of stderr; redacted, capped."""
    secrets = tuple(secrets)
    err = read_capped(
        transcript_dir / STDERR_FILE,
        min(STDERR_TAIL_BYTES, limit // 4),
        secrets=secrets,
        keep_head=False,
    )
    section = f"{STDERR_HEADER}\n{err}" if err.strip() else ""
    out = read_capped(
        transcript_dir / STDOUT_FILE,
        limit - len(section.encode()) - 1,
        secrets=secrets,
    )
    if out and section and not out.endswith("\n"):
        out += "\n"
    return out + section


async def upload(
    client: httpx.AsyncClient | None,
    bot_url: str,
    job_id: str,
    transcript_dir: Path,
    *,
    try_number: int,
    agent: str,
    result: Result,
    seconds: float,
    secrets: Iterable[str],
    usage: Usage | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    claim_secret: str = "",
) -> str | None:
    """Send one try's transcript to the bot; its link, or None (logged) when that failed.

    `usage` is what this run spent, when the caller worked it out (a resumed session's CLI may
    report running totals); by default what the agent reported. `outcome` and `reason` are the
    runner's verdict on the try (tests run after the agent); by default the agent's own.
    `claim_secret` proves the job is this runner's (``CLAIM_SECRET_HEADER``).
    """
    if client is None:  # not connected to a bot (a test driving one job by hand)
        return None
    url = f"{bot_url.rstrip('/')}/runner/jobs/{quote(job_id, safe='')}/transcripts"
    secrets = tuple(s for s in secrets if s)
    spent = usage or result.usage  # what this run spent (runner.usage), else what it reported
    try:
        text = await asyncio.to_thread(collect, transcript_dir, secrets=secrets)
        body = TranscriptUpload(
            try_=try_number,
            agent=agent[:100],
            outcome=TryOutcome(outcome or result.outcome.value),
            reason=redact(reason if reason is not None else result.reason, secrets)[:200],
            seconds=seconds,
            usage=WireUsage(
                input_tokens=spent.input_tokens,
                output_tokens=spent.output_tokens,
                cost_usd=spent.cost_usd,
                cost_note=spent.cost_note,
            ),
            text=text,
        )
        resp = await client.post(
            url,
            json=body.model_dump(mode="json", by_alias=True),
            headers={CLAIM_SECRET_HEADER: claim_secret},
        )
    except Exception as exc:  # noqa: BLE001 - a transcript must never fail the job
        log.warning("transcript_upload_failed job=%s try=%d %s", job_id, try_number,
                    type(exc).__name__)  # fmt: skip
        return None
    if resp.status_code >= 300:
        log.warning("transcript_upload_rejected job=%s try=%d status=%s", job_id, try_number,
                    resp.status_code)  # fmt: skip
        return None
    try:
        link = resp.json().get("url")
    except ValueError:
        link = None
    log.info("transcript_uploaded job=%s try=%d chars=%d", job_id, try_number, len(text))
    return str(link) if link else None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _head(text: str, limit: int) -> str:
    """At most ``limit`` bytes from the start, ending after a line break when one is near."""
    head = text.encode()[:limit].decode("utf-8", "ignore")
    cut = head.rfind("\n")
    return head[: cut + 1] if cut >= len(head) // 2 else head


def _tail(text: str, limit: int) -> str:
    """At most ``limit`` bytes from the end, starting after a line break when one is near."""
    if limit <= 0:
        return ""
    data = text.encode()
    tail = data[-limit:].decode("utf-8", "ignore") if len(data) > limit else text
    if len(data) <= limit:
        return tail
    cut = tail.find("\n")
    return tail[cut + 1 :] if 0 <= cut < len(tail) // 2 else tail
