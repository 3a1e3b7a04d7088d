"""The runner daemon: K workers claim jobs from the bot, run an agent in a worktree, push, report.

Per job (docs/architecture.md, "bot <-> runner protocol"): fetch the repository mirror with the
job's installation token, create the task's worktree, run the agent while heartbeating, commit
and force-push the task branch, and post the result. Every failure becomes a `failed` result;
a worker never dies, and the worktree is always removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from runner.agents import get_adapter
from runner.agents.base import Outcome, Result, RunRequest
from runner.git import GitError, RepoMirror
from runner.process import run_agent

log = logging.getLogger(__name__)

AUTHOR_NAME = "stoneforge[bot]"
AUTHOR_EMAIL = "stoneforge[bot]@users.noreply.github.com"
RETRYABLE_STATUS = frozenset({401, 408, 425, 429})


class Runner:
    def __init__(
        self,
        bot_url: str,
        token: str,
        *,
        workers: int = 3,
        work_dir: Path,
        name: str = "runner-1",
        agent_override: str | None = None,
        agent_timeout_s: float = 1800,
        stall_timeout_s: float = 600,
        heartbeat_s: float = 10,
        claim_wait_s: float = 20,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        retry_base_s: float = 1.0,
        retry_max_s: float = 30.0,
        report_attempts: int = 8,
    ) -> None:
        self.bot_url = bot_url.rstrip("/")
        self._token = token
        self.workers = workers
        self.work_dir = Path(work_dir).absolute()
        self.name = name
        self.agent_override = agent_override
        self.agent_timeout_s = agent_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.heartbeat_s = heartbeat_s
        self.claim_wait_s = claim_wait_s
        self.on_event = on_event
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.report_attempts = report_attempts
        self._mirrors: dict[str, RepoMirror] = {}
        self._client: httpx.AsyncClient | None = None

    # -- daemon ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run the workers until `stop` is set; jobs already claimed are finished first."""
        timeout = httpx.Timeout(30.0, read=self.claim_wait_s + 30.0)
        headers = {"Authorization": f"Bearer {self._token}"}
        async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
            self._client = client
            try:
                async with asyncio.TaskGroup() as group:
                    for i in range(self.workers):
                        group.create_task(self._worker(f"{self.name}/w{i}", stop))
            finally:
                self._client = None

    async def _worker(self, worker: str, stop: asyncio.Event) -> None:
        log.info("worker_started worker=%s", worker)
        failures = 0
        while not stop.is_set():
            try:
                job = await self._claim(worker, stop)
                failures = 0
            except _ClaimError as exc:
                failures += 1
                delay = min(self.retry_base_s * 2 ** (failures - 1), self.retry_max_s)
                log.warning("claim_failed worker=%s %s; retrying in %.1fs", worker, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            if job is not None:
                await self._handle(worker, job)
        log.info("worker_stopped worker=%s", worker)

    async def _claim(self, worker: str, stop: asyncio.Event) -> dict[str, Any] | None:
        body = {"runner": self.name, "worker": worker, "wait_s": self.claim_wait_s}
        claim = asyncio.create_task(self._post("/runner/claim", body))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({claim, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not claim.done():
            claim.cancel()
            await asyncio.gather(claim, return_exceptions=True)
            return None
        try:
            resp = claim.result()
        except httpx.HTTPError as exc:
            raise _ClaimError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 204:
            return None
        if resp.status_code == 401:
            raise _ClaimError("401 from the bot: is the runner token right?")
        if resp.status_code != 200:
            raise _ClaimError(f"HTTP {resp.status_code} from the bot")
        try:
            job = resp.json()
        except ValueError:
            raise _ClaimError("the bot answered 200 with a body that is not JSON") from None
        if not isinstance(job, dict) or not isinstance(job.get("job_id"), str):
            raise _ClaimError("the bot answered 200 without a job_id")
        return job

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        assert self._client is not None, "Runner.run() is not running"
        return await self._client.post(f"{self.bot_url}{path}", json=body)

    # -- one job -----------------------------------------------------------------------------

    async def _handle(self, worker: str, job: dict[str, Any]) -> None:
        job_id = job["job_id"]
        cancelled = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job_id, cancelled))
        try:
            report = await self._execute(worker, job, cancelled)
        except Exception as exc:  # a worker never dies; the bot hears about every failure
            log.exception("job_crashed worker=%s job=%s", worker, job_id)
            report = _report(job, "failed", "runner_error", detail=f"{type(exc).__name__}: {exc}")
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        if isinstance(report.get("detail"), str) and job.get("token"):
            report["detail"] = report["detail"].replace(str(job["token"]), "***")
        if report["outcome"] == "failed":
            reason, detail = report["reason"], report["detail"]
            log.warning("job_failed worker=%s job=%s reason=%s", worker, job_id, reason)
            self._emit("job_failed", worker, job_id, reason=reason, detail=detail)
        await self._send_result(job_id, report)

    async def _execute(
        self, worker: str, job: dict[str, Any], cancelled: asyncio.Event
    ) -> dict[str, Any]:
        repo, issue, branch = job["repo"], int(job["issue"]), job["branch"]
        attempt = int(job.get("attempt") or 1)
        token = job["token"]
        mirror = self._mirror(repo, job["clone_url"])
        worktree = self.work_dir / "worktrees" / f"{repo.replace('/', '-')}-{issue}-{attempt}"
        log.info("job_started worker=%s job=%s branch=%s", worker, job["job_id"], branch)
        self._emit(
            "job_started",
            worker,
            job["job_id"],
            repo=repo,
            issue=issue,
            branch=branch,
            attempt=attempt,
            worktree=str(worktree),
        )
        try:
            await asyncio.to_thread(mirror.fetch, token)
            continue_pushed = attempt > 1 and not job.get("restart")
            await asyncio.to_thread(
                mirror.add_worktree,
                worktree,
                branch,
                job.get("base") or "main",
                from_remote_branch=continue_pushed,
            )
            return await self._agent_then_push(worker, job, mirror, worktree, cancelled)
        except GitError as exc:
            return _report(job, "failed", "git_error", detail=str(exc))
        finally:
            try:
                await asyncio.to_thread(mirror.remove_worktree, worktree)
            except Exception:
                log.exception("worktree_cleanup_failed job=%s path=%s", job["job_id"], worktree)

    async def _agent_then_push(
        self,
        worker: str,
        job: dict[str, Any],
        mirror: RepoMirror,
        worktree: Path,
        cancelled: asyncio.Event,
    ) -> dict[str, Any]:
        agent = job.get("agent") or {}
        try:
            adapter = get_adapter(self.agent_override or str(agent.get("name")))
        except ValueError as exc:
            return _report(job, "failed", "unknown_agent", detail=str(exc))
        req = RunRequest(
            task_id=job["job_id"], prompt=job["prompt"], workdir=worktree, model=agent.get("model")
        )
        started = time.monotonic()
        result = await run_agent(
            adapter,
            req,
            timeout_s=self.agent_timeout_s,
            stall_timeout_s=self.stall_timeout_s,
            cancel=cancelled,
            transcript_dir=self.work_dir / "logs" / worktree.name,
        )
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "agent_finished job=%s outcome=%s reason=%s seconds=%.1f",
            job["job_id"],
            result.outcome.value,
            result.reason,
            seconds,
        )
        self._emit(
            "agent_finished",
            worker,
            job["job_id"],
            outcome=result.outcome.value,
            reason=result.reason,
            agent_seconds=seconds,
        )
        facts = {"agent_seconds": seconds, "summary": result.final_text, "usage": _usage(result)}
        if result.outcome is not Outcome.COMPLETED:
            reason, detail = _failure(result)
            return _report(job, "failed", reason, detail=detail, **facts)
        if cancelled.is_set():
            return _report(job, "failed", "cancelled", detail="the bot cancelled the job", **facts)
        title = str(job.get("title") or f"Task #{job['issue']}")
        message = f"{title}\n\nStoneforge-Task: {job['repo']}#{job['issue']}\n"
        sha = await asyncio.to_thread(
            mirror.commit_all, worktree, message, author_name=AUTHOR_NAME, author_email=AUTHOR_EMAIL
        )
        if sha is None:
            return _report(job, "failed", "no_changes", detail="agent made no changes", **facts)
        await asyncio.to_thread(mirror.push, worktree, job["branch"], job["token"], force=True)
        log.info("pushed job=%s branch=%s sha=%s", job["job_id"], job["branch"], sha)
        self._emit("pushed", worker, job["job_id"], branch=job["branch"], head_sha=sha)
        return _report(job, "completed", "success", head_sha=sha, **facts)

    def _mirror(self, repo: str, clone_url: str) -> RepoMirror:
        mirror = self._mirrors.get(repo)
        if mirror is None or mirror.clone_url != clone_url:
            mirror = self._mirrors[repo] = RepoMirror(self.work_dir, repo, clone_url)
        return mirror

    async def _heartbeat(self, job_id: str, cancelled: asyncio.Event) -> None:
        path = f"/runner/jobs/{quote(job_id, safe='')}/heartbeat"
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                resp = await self._post(path, {})
            except httpx.HTTPError as exc:
                log.warning("heartbeat_failed job=%s %s", job_id, type(exc).__name__)
                continue
            if resp.status_code == 410:
                log.info("job_cancelled_by_bot job=%s", job_id)
                cancelled.set()
                return
            if resp.status_code >= 300:
                log.warning("heartbeat_rejected job=%s status=%s", job_id, resp.status_code)

    async def _send_result(self, job_id: str, report: dict[str, Any]) -> None:
        """Post the result, retrying with backoff: a lost report strands the task."""
        path = f"/runner/jobs/{quote(job_id, safe='')}/result"
        for attempt in range(self.report_attempts):
            try:
                resp = await self._post(path, report)
            except httpx.HTTPError as exc:
                log.warning("result_post_failed job=%s %s", job_id, type(exc).__name__)
            else:
                if resp.status_code < 300:
                    log.info("result_sent job=%s outcome=%s", job_id, report["outcome"])
                    return
                if resp.status_code < 500 and resp.status_code not in RETRYABLE_STATUS:
                    log.error("result_rejected job=%s status=%s", job_id, resp.status_code)
                    return
                log.warning("result_post_failed job=%s status=%s", job_id, resp.status_code)
            if attempt + 1 < self.report_attempts:
                await asyncio.sleep(min(self.retry_base_s * 2**attempt, self.retry_max_s))
        log.error("result_lost job=%s outcome=%s", job_id, report["outcome"])

    def _emit(self, kind: str, worker: str, job_id: str, **fields: Any) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event({"type": kind, "worker": worker, "job_id": job_id, **fields})
        except Exception:
            log.exception("on_event callback failed")


class _ClaimError(Exception):
    pass


def _report(job: dict[str, Any], outcome: str, reason: str, **fields: Any) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "reason": reason,
        "head_sha": fields.get("head_sha"),
        "branch": job.get("branch"),
        "agent_seconds": fields.get("agent_seconds", 0.0),
        "summary": fields.get("summary"),
        "usage": fields.get("usage") or {"input_tokens": 0, "output_tokens": 0, "cost_usd": None},
        "detail": fields.get("detail"),
    }


def _usage(result: Result) -> dict[str, Any]:
    usage = result.usage
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost_usd,
    }


def _failure(result: Result) -> tuple[str, str]:
    """(reason, detail) for an agent run that did not complete."""
    reason = result.reason if result.outcome is Outcome.FAILED else result.outcome.value
    head = f"agent {result.outcome.value}: {result.reason}"
    if result.retry_at:
        head += f" (retry at {result.retry_at.isoformat()})"
    return reason, f"{head}\n{result.detail}" if result.detail else head
