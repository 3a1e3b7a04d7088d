"""The runner's side of the wire (``bot.core.protocol``): claims, heartbeats, transcripts and
results, each a model, each job's messages with its claim secret.

The bot answers a job's heartbeat, transcript or result with 403 (not this runner's job, or not
its secret), 409 (no longer the task's running job) or, from an older bot, 410 (cancelled): the
job is no longer ours, and the runner stops it and reports nothing.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from bot.core.protocol import CLAIM_SECRET_HEADER, ClaimAnswer, ClaimRequest, Job, JobResult
from runner import transcripts

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({401, 408, 425, 429})
#: The bot says the job is not (or no longer) this runner's: stop it and report nothing.
NOT_OURS_STATUS = frozenset({403, 409, 410})


class ClaimError(Exception):
    """A claim that got no answer the runner can use (it retries with backoff)."""


class Beat(StrEnum):
    KEPT = "kept"  # the lease is renewed
    NOT_OURS = "not_ours"  # stop the job, report nothing
    FAILED = "failed"  # no answer, or an unexpected one: try again at the next beat


class BotClient:
    """The bot's runner API over ``client`` (which carries the runner's bearer token)."""

    def __init__(self, client: httpx.AsyncClient, bot_url: str) -> None:
        self.client = client
        self.bot_url = bot_url.rstrip("/")

    async def claim(self, request: ClaimRequest) -> ClaimAnswer | None:
        """A job or a prefetch hint, or None (204); ``ClaimError`` when the bot could not say."""
        try:
            resp = await self._post("/runner/claim", request.model_dump(mode="json"))
        except httpx.HTTPError as exc:
            raise ClaimError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 204:
            return None
        if resp.status_code == 401:
            raise ClaimError("401 from the bot: is the runner token right?")
        if resp.status_code != 200:
            raise ClaimError(f"HTTP {resp.status_code} from the bot")
        try:
            return ClaimAnswer.model_validate_json(resp.content)
        except ValidationError as exc:
            problem = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False)[:3])
            raise ClaimError(f"the bot's answer is not a claim answer: {problem}") from None

    async def heartbeat(self, job: Job) -> Beat:
        try:
            resp = await self._post(_path(job, "heartbeat"), {}, job.claim_secret)
        except httpx.HTTPError as exc:
            log.warning("heartbeat_failed job=%s %s", job.job_id, type(exc).__name__)
            return Beat.FAILED
        if resp.status_code in NOT_OURS_STATUS:
            log.info("job_taken_back job=%s status=%s: %s", job.job_id, resp.status_code,
                     _message(resp))  # fmt: skip
            return Beat.NOT_OURS
        if resp.status_code >= 300:
            log.warning("heartbeat_rejected job=%s status=%s", job.job_id, resp.status_code)
            return Beat.FAILED
        return Beat.KEPT

    async def upload_transcript(self, job: Job, log_dir: Path, **facts: Any) -> str | None:
        """One try's transcript (``runner.transcripts.upload``); its link, or None."""
        return await transcripts.upload(self.client, self.bot_url, job.job_id, log_dir,
                                        claim_secret=job.claim_secret, **facts)  # fmt: skip

    async def send_result(
        self, job: Job, report: JobResult, *, attempts: int, retry_base_s: float, retry_max_s: float
    ) -> None:
        """Post the result, retrying with backoff: a lost report strands the task."""
        job_id = job.job_id
        body = report.model_dump(mode="json", by_alias=True)
        for attempt in range(attempts):
            try:
                resp = await self._post(_path(job, "result"), body, job.claim_secret)
            except httpx.HTTPError as exc:
                log.warning("result_post_failed job=%s %s", job_id, type(exc).__name__)
            else:
                if resp.status_code < 300:
                    log.info("result_sent job=%s outcome=%s", job_id, report.outcome)
                    return
                if resp.status_code in NOT_OURS_STATUS:
                    log.warning("result_refused job=%s status=%s: %s (the job is no longer "
                                "ours)", job_id, resp.status_code, _message(resp))  # fmt: skip
                    return
                if resp.status_code < 500 and resp.status_code not in RETRYABLE_STATUS:
                    log.error("result_rejected job=%s status=%s: %s", job_id, resp.status_code,
                              _message(resp))  # fmt: skip
                    return
                log.warning("result_post_failed job=%s status=%s", job_id, resp.status_code)
            if attempt + 1 < attempts:
                await asyncio.sleep(min(retry_base_s * 2**attempt, retry_max_s))
        log.error("result_lost job=%s outcome=%s", job_id, report.outcome)

    async def _post(
        self, path: str, body: dict[str, Any], claim_secret: str | None = None
    ) -> httpx.Response:
        headers = {CLAIM_SECRET_HEADER: claim_secret} if claim_secret is not None else None
        return await self.client.post(f"{self.bot_url}{path}", json=body, headers=headers)


def _path(job: Job, what: str) -> str:
    return f"/runner/jobs/{quote(job.job_id, safe='')}/{what}"


def _message(resp: httpx.Response) -> str:
    """A refusal's ``message`` (``bot.core.protocol.Refusal``), or its text."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(data.get("message") or data)[:200] if isinstance(data, dict) else str(data)[:200]
