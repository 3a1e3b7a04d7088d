"""GitHub Actions as the execution engine (``backend: actions`` in ``.github/stoneforge.yml``).

Such repositories are not served by long-polling runners. Per task:

1. The dispatcher claims the task in the store exactly as for a runner, builds the job, and
   calls :meth:`ActionsBackend.dispatch` with the claimed task and that job.
2. ``dispatch`` mints a single-use job token (only its sha256 is kept), stretches the lease to
   cover the run's queueing and set-up, and dispatches the workflow ``stoneforge-agent.yml`` on
   the default branch with the inputs ``job_id``, ``bot_url`` and ``job_token``.
3. The workflow's action calls ``POST /actions/jobs/{job_id}/claim`` with
   ``Authorization: Bearer <job token>``: 200 with the same ``Job`` a runner gets (its claim
   secret included), once. The token is then spent for claiming; any later claim, or a wrong
   token, gets 401.
4. Heartbeats, transcripts and the result go to the ordinary runner endpoints with the same
   bearer and the job's claim secret: :meth:`ActionsBackend.authorizes` accepts the bearer for
   that one job only, until :meth:`discard` or the run's time limit, as the runner ``actions``
   that the dispatcher claimed the job for.

Limitation: the grants live in this process's memory. After a bot restart, or when another
bot replica answers the claim, a pending action job is refused (401); its task comes back
through lease expiry and is dispatched again.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from bot.adapters.github import GitHubError
from bot.core.lifecycle import DispatchRetry, Failed
from bot.core.model import IssueRef, Task, TaskState
from bot.core.protocol import ActionsClaim, Job
from bot.ports import TaskStore, Transitions, WorkflowPort
from bot.signature import bearer_token, token_hash
from bot.wire import parse_body, refuse

log = logging.getLogger(__name__)

WORKFLOW = "stoneforge-agent.yml"
#: GitHub's own limit on a job's run time is 6 h; a little more covers queueing.
RUN_LIMIT_S = 6 * 3600 + 15 * 60


@dataclass(frozen=True)
class _Parts:
    """What the backend uses once bound: the workflow port, the tasks, their state changes."""

    github: WorkflowPort
    store: TaskStore
    views: Transitions
    lease_s: float


@dataclass
class _Grant:
    digest: str  # token_hash of the job token: only its hash is kept
    ref: IssueRef
    attempt: int
    installation_id: int
    job: Job | None  # handed out once, then forgotten (it holds the claim secret and a token)
    claim_until: float
    run_until: float | None = None  # set when the token is spent on the claim

    @property
    def claimed(self) -> bool:
        return self.run_until is not None


class ClaimRefused(Exception):
    """A claim the bot refuses: ``status`` is the HTTP answer (401 or 410)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ActionsBackend:
    """Hands claimed tasks to GitHub Actions runs through ``workflow_dispatch``.

    Build it in ``create_app`` (the router needs it before start-up) and :meth:`bind` the
    ports it uses in the lifespan, once the composition root has built them.
    """

    def __init__(
        self,
        *,
        bot_url: str,
        workflow: str = WORKFLOW,
        start_timeout_s: float = 1800.0,
        run_limit_s: float = RUN_LIMIT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_url = bot_url.rstrip("/")
        self.workflow = workflow
        self.start_timeout_s = start_timeout_s
        self.run_limit_s = run_limit_s
        self._clock = clock
        self._parts: _Parts | None = None
        self._grants: dict[str, _Grant] = {}

    def bind(
        self, github: WorkflowPort, store: TaskStore, views: Transitions, *, lease_s: float
    ) -> None:
        self._parts = _Parts(github, store, views, lease_s)

    @property
    def parts(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("ActionsBackend.bind(...) was not called")
        return self._parts

    def pending(self) -> list[str]:
        """Job ids dispatched and not yet claimed."""
        self._purge()
        return [jid for jid, grant in self._grants.items() if not grant.claimed]

    # -- dispatch ----------------------------------------------------------------------------

    async def dispatch(self, task: Task, job: Job) -> None:
        """Start a workflow run for ``job`` (``task`` is already claimed in the store).

        A dispatch GitHub refuses (no workflow file on the default branch, no
        ``workflow_dispatch`` trigger, no ``actions: write`` permission) fails the task with
        the reason; a transient failure puts it back in the queue for a later attempt.
        """
        job_id = job.job_id
        token = secrets.token_urlsafe(32)
        now = self._clock()
        self._purge()
        self._grants[job_id] = _Grant(
            digest=token_hash(token),
            ref=task.ref,
            attempt=task.attempt,
            installation_id=task.installation_id or 0,
            job=job,
            claim_until=now + self.start_timeout_s,
        )
        await self._update(task.ref, lease_until=now + self.start_timeout_s)
        inputs = {"job_id": job_id, "bot_url": self.bot_url, "job_token": token}
        if task.runs_on:  # the workflow's `runs-on` routes it (only sent when needed, so a
            # workflow without the optional input keeps working for repositories without it)
            inputs["runs_on"] = json.dumps(list(task.runs_on))
        ref = job.base
        try:
            await self.parts.github.dispatch_workflow(
                task.installation_id or 0, task.repo, self.workflow, ref, inputs
            )
        except GitHubError as exc:
            self._grants.pop(job_id, None)
            await self._dispatch_failed(task, exc)
            return
        log.info("workflow_dispatched", extra={"repo": task.repo, "issue": task.number})

    async def _dispatch_failed(self, task: Task, exc: GitHubError) -> None:
        views = self.parts.views
        if exc.status == 0 or exc.status >= 500 or exc.status == 429:
            log.warning("workflow_dispatch_retry repo=%s: %s", task.repo, exc)
            await views.transition(
                task,
                TaskState.QUEUED,
                DispatchRetry(str(exc)),
                worker=None,
                not_before=self._clock() + 60,
                attempt=max(0, task.attempt - 1),  # GitHub's hiccup, not the task's
            )
            return
        log.warning("workflow_dispatch_refused repo=%s: %s", task.repo, exc)
        detail = (
            f"actions_dispatch_failed: GitHub refused to start .github/workflows/"
            f"{self.workflow} ({exc}). The repository uses `backend: actions`: the workflow "
            "must be on the default branch with `on: workflow_dispatch` (inputs job_id, "
            "bot_url, job_token), and the App needs the `actions: write` permission."
        )
        await views.transition(task, TaskState.FAILED, Failed(detail))

    # -- the run's side ----------------------------------------------------------------------

    async def claim(self, job_id: str, token: str | None, run: ActionsClaim | None = None) -> Job:
        """The job for a valid, unspent token; spends it. Raises :class:`ClaimRefused`."""
        grant = self._grants.get(job_id)
        now = self._clock()
        if (
            grant is None
            or token is None
            or not hmac.compare_digest(grant.digest, token_hash(token))
            or grant.claimed
            or grant.claim_until < now
        ):
            raise ClaimRefused(401, "unknown, spent or expired job token")
        grant.run_until = now + self.run_limit_s  # spent before any await: claims race-free
        task = await asyncio.to_thread(self.parts.store.get_task, grant.ref)
        if task is None or task.state != TaskState.RUNNING or task.attempt != grant.attempt:
            self._grants.pop(job_id, None)
            raise ClaimRefused(410, "the job is no longer running")
        run_id = (run.run_id or "").strip() if run is not None else ""
        worker = f"actions/{run_id}" if run_id else task.worker
        await self._update(grant.ref, worker=worker, lease_until=now + self.parts.lease_s)
        job, grant.job = grant.job, None  # the job (and its secrets) is handed out once
        if job is None:
            raise ClaimRefused(401, "unknown, spent or expired job token")
        try:  # a fresh installation token: the run may have queued for a while
            fresh = await self.parts.github.repo_token(grant.installation_id, task.repo)
            job = job.model_copy(update={"token": fresh})
        except GitHubError as exc:
            log.warning("job_token_refresh_failed job=%s: %s", job_id, exc)
        log.info("actions_job_claimed", extra={"repo": task.repo, "issue": task.number})
        return job

    def authorizes(self, job_id: str, token: str | None) -> bool:
        """True if ``token`` (the bare token) is the claimed job token of ``job_id``.

        For the runner API's auth check on ``/runner/jobs/{job_id}/heartbeat`` and ``/result``.
        """
        grant = self._grants.get(job_id)
        if grant is None or token is None or grant.run_until is None:
            return False
        if grant.run_until < self._clock():
            return False
        return hmac.compare_digest(grant.digest, token_hash(token))

    def discard(self, job_id: str) -> None:
        """Forget a job's grant (call when its result has been recorded)."""
        self._grants.pop(job_id, None)

    def _purge(self) -> None:
        now = self._clock()
        for jid, grant in list(self._grants.items()):
            if (grant.run_until or grant.claim_until) < now:
                del self._grants[jid]

    async def _update(self, ref: IssueRef, **fields: Any) -> None:
        await asyncio.to_thread(functools.partial(self.parts.store.update_task, ref, **fields))


_ACTIONS_CLAIM = TypeAdapter(ActionsClaim)


def actions_router(backend: ActionsBackend) -> APIRouter:
    """``POST /actions/jobs/{job_id}/claim``: the workflow run collects its job, once."""
    router = APIRouter(prefix="/actions")

    @router.post("/jobs/{job_id:path}/claim")
    async def claim(
        job_id: str, request: Request, authorization: str | None = Header(default=None)
    ) -> Response:
        run = parse_body(await request.body() or b"{}", _ACTIONS_CLAIM)
        if isinstance(run, JSONResponse):
            return run
        try:
            job = await backend.claim(job_id, bearer_token(authorization), run)
        except ClaimRefused as exc:
            return refuse(exc.status, exc.message)
        return JSONResponse(job.model_dump(mode="json", by_alias=True))

    return router
