"""A job belongs to the runner that claimed it.

Every dispatch gets a job id that is never reused and a claim secret only the claiming runner
receives (the store keeps its hash). A forged or replayed heartbeat, transcript or result is
refused: another runner (403), a wrong or missing secret (403), a stale job id (409), a NaN or
negative number (422), another branch (403). The store half runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot.core.model import IssueRef, Task, TaskState
from bot.core.protocol import (
    CLAIM_SECRET_HEADER,
    CompletedResult,
    FailedResult,
    FailureReason,
    JobResult,
)
from bot.job_claims import JobRefused, JobReports, job_id, parse_job_id
from bot.metrics import bot_metrics
from bot.runner_api import new_registration_token
from bot.signature import token_hash
from bot.store import Store
from runner.registration import register
from tests.harness import RUNNER_TOKEN, World, wait_until

REF = IssueRef("octo/app", 7)
SHA = "a" * 40


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.close()


def _queued(store: Store, **fields: Any) -> None:
    store.create_task(Task(repo=REF.repo, number=REF.number, title="t", state=TaskState.QUEUED,
                           branch="stoneforge/7-t", **fields))  # fmt: skip


def _claim(store: Store, owner: str = "shared", secret: str = "s" * 32) -> Any:
    claimed = store.claim_job(
        [REF], worker="r/w0", now=time.time(), lease_s=60, owner=owner,
        secret_hash=token_hash(secret),
    )  # fmt: skip
    assert claimed is not None
    return claimed


def test_job_ids_are_never_reused_across_refunds_and_relabels(store: Store) -> None:
    _queued(store)
    first = _claim(store)
    assert (first.dispatch, first.task.attempt) == (1, 1)
    # A rate limit (or a review round) gives the attempt back: the dispatch count goes on.
    store.update_task(REF, state=TaskState.QUEUED, attempt=0)
    second = _claim(store)
    assert (second.dispatch, second.task.attempt) == (2, 1)
    # A relabel starts the task afresh (attempt 0): still a new job id.
    store.update_task(REF, state=TaskState.QUEUED, attempt=0, detail="restart: relabeled")
    store.upsert_task(store.get_task(REF))  # a full rewrite of the task keeps the count too
    third = _claim(store)
    assert third.dispatch == 3
    ids = {job_id(REF, c.dispatch) for c in (first, second, third)}
    assert len(ids) == 3
    assert parse_job_id(job_id(REF, 3)) == (REF, 3)
    assert parse_job_id("octo/app#7") is None
    assert parse_job_id("nonsense@2") is None


def test_the_store_keeps_the_claimer_and_only_the_hash_of_its_secret(store: Store) -> None:
    _queued(store)
    secret = "the-claim-secret-only-the-runner-knows"
    _claim(store, owner="runner:abc", secret=secret)
    held = store.job_owner(REF)
    assert held is not None
    assert (held.state, held.dispatch, held.owner) == (TaskState.RUNNING, 1, "runner:abc")
    assert held.secret_hash == token_hash(secret) != secret
    assert store.job_owner(IssueRef("octo/app", 99)) is None


def test_review_rounds_count_the_reviews_answered(store: Store) -> None:
    _queued(store)
    assert _claim(store).review_round == 0  # no review sent it back
    store.update_task(REF, state=TaskState.QUEUED, review_id=11, attempt=0)
    assert _claim(store).review_round == 1
    store.update_task(REF, state=TaskState.QUEUED, attempt=0)  # rate limited: the same round
    assert _claim(store).review_round == 1
    store.update_task(REF, state=TaskState.QUEUED, review_id=12, attempt=0)
    assert _claim(store).review_round == 2
    store.answer_review(REF, 13)  # a review that came in after the claim: this round's too
    answered = store.get_task(REF)
    assert answered is not None
    assert answered.review_id == 13
    store.update_task(REF, state=TaskState.QUEUED, attempt=0)
    assert _claim(store).review_round == 2
    store.update_task(REF, state=TaskState.QUEUED, review_id=14, attempt=0)
    assert _claim(store).review_round == 3


class _Results:
    """A ``ResultHandler`` that records what it was given (a refused result gets nowhere)."""

    def __init__(self) -> None:
        self.applied: list[tuple[Task, JobResult]] = []

    async def open_pending(self) -> int:
        return 0

    async def apply(self, task: Task, result: JobResult) -> None:
        self.applied.append((task, result))


def _reports(store: Store) -> tuple[JobReports, Any, _Results, list[IssueRef]]:
    metrics = bot_metrics()
    results, revoked = _Results(), list[IssueRef]()
    reports = JobReports(store, results, revoked.append, lease_s=60.0, metrics=metrics)
    return reports, metrics, results, revoked


def _completed(branch: str = "stoneforge/7-t") -> CompletedResult:
    return CompletedResult(branch=branch, head_sha=SHA)


def test_forged_and_replayed_reports_are_refused_from_the_store(store: Store) -> None:
    """Any replica answers alike: the check reads only the store."""
    _queued(store)
    old_secret, secret = "s" * 32, "t" * 32
    _claim(store, owner="runner:one", secret=old_secret)
    store.update_task(REF, state=TaskState.QUEUED, attempt=0)  # the lease expired
    _claim(store, owner="runner:one", secret=secret)
    reports, metrics, results, revoked = _reports(store)
    current, stale = job_id(REF, 2), job_id(REF, 1)

    async def refused(jid: str, owner: str, secret: str | None, branch: str = "") -> JobRefused:
        result = _completed(branch) if branch else _completed()
        with pytest.raises(JobRefused) as caught:
            await reports.job_result(jid, owner, secret, result)
        return caught.value

    async def run() -> None:
        assert (await reports.owned(current, "runner:one", secret)).ref == REF
        await reports.heartbeat(current, "runner:one", secret)
        assert (await refused(current, "runner:two", secret)).status == 403  # another runner
        assert (await refused(current, "runner:one", "x" * 32)).status == 403  # wrong secret
        assert (await refused(current, "runner:one", None)).status == 403  # no secret
        assert metrics.stale_results.value() == 0
        replay = await refused(stale, "runner:one", old_secret)  # the earlier job's result
        assert replay.status == 409
        assert "is not running" in replay.message
        assert (
            await refused(job_id(IssueRef("octo/app", 99), 1), "runner:one", secret)
        ).status == 409
        assert (await refused("garbage", "runner:one", secret)).status == 409
        assert metrics.stale_results.value() == 3, "each result for a job not running is counted"
        other = await refused(current, "runner:one", secret, branch="main")
        assert other.status == 403
        assert "stoneforge/7-t" in other.message
        with pytest.raises(JobRefused) as caught:
            await reports.heartbeat(stale, "runner:one", old_secret)
        assert caught.value.status == 409

    asyncio.run(run())
    task = store.get_task(REF)
    assert task is not None
    assert (task.state, task.pr_number, task.head_sha) == (TaskState.RUNNING, None, None)
    assert results.applied == [], "no refused result reached the task"
    assert revoked == [], "nor revoked its token"


def test_a_nan_or_negative_number_is_not_a_result() -> None:
    with pytest.raises(ValueError, match="finite"):
        FailedResult.model_validate({"branch": "b", "reason": "crash",
                                     "usage": {"cost_usd": float("nan")}})  # fmt: skip
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        FailedResult(branch="b", reason=FailureReason.CRASH, agent_seconds=-1)


# -- over HTTP, as a runner meets it ---------------------------------------------------------


def _result_url(world: World, jid: str) -> str:
    return f"{world.bot_url}/runner/jobs/{quote(jid, safe='')}/result"


def _post(world: World, jid: str, body: Any, token: str, secret: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if secret is not None:
        headers[CLAIM_SECRET_HEADER] = secret
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(_result_url(world, jid), content=content, headers=headers, timeout=10)


def _stale_results(world: World) -> float:
    page = httpx.get(f"{world.bot_url}/metrics", timeout=10).text
    (line,) = [x for x in page.splitlines() if x.startswith("stoneforge_stale_results_total")]
    return float(line.split()[-1])


def test_forged_results_are_refused_over_http_and_change_nothing(world: World) -> None:
    issue = world.file("Own me")
    world.label(issue["number"])
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    jid, secret, branch = job["job_id"], job["claim_secret"], job["branch"]
    assert jid.endswith("@1")
    good = {"outcome": "completed", "head_sha": SHA, "branch": branch}

    store = Store(f"sqlite:///{world.tmp / 'bot.db'}")
    try:
        reg = new_registration_token(store, ttl_s=60)
    finally:
        store.close()
    other = register(world.bot_url, reg, name="other", labels=[], capacity=1,
                     config_path=world.tmp / "other.json")  # fmt: skip

    refusals = {
        "another runner's token": _post(world, jid, good, other.runner_token, secret),
        "a wrong claim secret": _post(world, jid, good, RUNNER_TOKEN, "x" * 43),
        "no claim secret": _post(world, jid, good, RUNNER_TOKEN, None),
        "another branch": _post(world, jid, {**good, "branch": "main"}, RUNNER_TOKEN, secret),
    }
    for why, resp in refusals.items():
        assert resp.status_code == 403, (why, resp.text)
        assert resp.json()["message"], why
    nan = '{"outcome": "completed", "head_sha": "%s", "branch": "%s", "agent_seconds": NaN}'
    resp = _post(world, jid, nan % (SHA, branch), RUNNER_TOKEN, secret)
    assert resp.status_code == 422
    assert resp.json()["message"].startswith("completed.agent_seconds: ")
    cost = {**good, "usage": {"cost_usd": -0.5}}
    resp = _post(world, jid, cost, RUNNER_TOKEN, secret)
    assert resp.status_code == 422
    assert "usage.cost_usd" in resp.json()["message"]
    unknown = _post(world, jid, {**good, "pr_number": 9}, RUNNER_TOKEN, secret)
    assert unknown.status_code == 422, "unknown keys are refused, not ignored"
    assert world.tasks()[issue["number"]]["state"] == "running", "nothing changed"

    before = _stale_results(world)
    replay = _post(world, jid.replace("@1", "@0"), good, RUNNER_TOKEN, secret)
    assert replay.status_code == 409
    assert "is not running" in replay.json()["message"]
    assert _stale_results(world) == before + 1

    failed = {"outcome": "failed", "reason": "tests_failed", "branch": branch, "detail": "2 failed"}
    assert _post(world, jid, failed, RUNNER_TOKEN, secret).status_code == 200
    wait_until(lambda: world.tasks()[issue["number"]]["state"] == "failed", what="failed")
    again = _post(world, jid, good, RUNNER_TOKEN, secret)  # the same result, replayed
    assert again.status_code == 409
    assert world.tasks()[issue["number"]]["state"] == "failed", "a replay changes nothing"
    assert _stale_results(world) == before + 2

    url = f"{world.bot_url}/runner/jobs/{quote(jid, safe='')}/heartbeat"
    beat = httpx.post(url, json={}, headers=World.headers(job), timeout=10)
    assert beat.status_code == 409
