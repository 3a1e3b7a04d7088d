"""The plans table: one plan being made per epic, atomic plan-job claims, plan job ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.model import IssueRef
from bot.director.jobs import parse_plan_job_id, plan_job_id, plan_refusal
from bot.signature import token_hash
from bot.store import Store
from bot.store.plans import PlanRecord, PlanState
from tests.harness.postgres import postgres_schema


def record(plan_id: str, epic: int = 1, now: float = 100.0) -> PlanRecord:
    return PlanRecord(plan_id, "octo/app", epic, 7, PlanState.REQUESTED, "lead", now, now)


def test_an_epic_has_one_plan_in_the_making_and_claims_take_the_oldest(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        assert store.request_plan(record("a", now=100.0)) is None
        busy = store.request_plan(record("b", now=101.0))
        assert busy is not None
        assert busy.plan_id == "a"
        assert store.request_plan(record("c", epic=2, now=99.0)) is None
        claim = {"worker": "r/w", "lease_s": 60.0, "owner": "shared", "secret_hash": "h"}
        first = store.claim_plan(now=200.0, **claim)
        assert first is not None
        assert (first.plan_id, first.state, first.dispatches) == ("c", PlanState.PLANNING, 1)
        second = store.claim_plan(now=200.0, **claim)
        assert second is not None
        assert second.plan_id == "a"
        assert store.claim_plan(now=200.0, **claim) is None
        assert {p.plan_id for p in store.expired_plan_leases(261.0)} == {"a", "c"}
        # held until later (a rate limit): not claimed before then
        store.update_plan("a", state=PlanState.REQUESTED, lease_until=500.0)
        assert store.claim_plan(now=300.0, **claim) is None
        again = store.claim_plan(now=500.0, **claim)
        assert again is not None
        assert again.dispatches == 2
        assert store.update_plan("a", expect=PlanState.DRAFTED, state=PlanState.FAILED) is None
        assert store.current_plan("octo/app", 1) == again
    finally:
        store.close()


def test_plan_job_ids_round_trip_and_refuse_what_is_not_the_running_job() -> None:
    jid = plan_job_id("octo/app", 3, "ab-cd", 2)
    assert jid == "octo/app#3@plan-ab-cd-2"
    assert parse_plan_job_id(jid) == (IssueRef("octo/app", 3), "ab-cd", 2)
    assert parse_plan_job_id("octo/app#3@2") is None
    running = PlanRecord(
        "ab-cd", "octo/app", 3, 7, PlanState.PLANNING, "lead", 1.0, 1.0,
        dispatches=2, job_owner="shared", job_secret_hash=token_hash("s" * 20),
    )  # fmt: skip
    assert plan_refusal(jid, running, "shared", "s" * 20) is None
    refused = plan_refusal(jid, running, "runner:other", "s" * 20)
    assert refused is not None
    assert refused.status == 403
    refused = plan_refusal(jid, running, "shared", "wrong-secret-xxxx")
    assert refused is not None
    assert refused.status == 403
    refused = plan_refusal(plan_job_id("octo/app", 3, "ab-cd", 1), running, "shared", "s" * 20)
    assert refused is not None
    assert refused.status == 409


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        made = Store(f"sqlite:///{tmp_path / 'bot.db'}")
        yield made
        made.close()
        return
    with postgres_schema() as url:
        made = Store(url)
        yield made
        made.close()


def test_two_replicas_that_both_saw_no_plan_being_made_start_only_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race on PostgreSQL: both replicas looked before either inserted. The second look
    # is made to miss the first plan; the database's unique index still refuses a second
    # plan in the making, and the caller gets the first one back.
    assert store.request_plan(record("a")) is None
    looks = iter([None])
    real = store._making
    monkeypatch.setattr(store, "_making", lambda repo, epic: next(looks, real(repo, epic)))
    busy = store.request_plan(record("b", now=101.0))
    assert busy is not None
    assert busy.plan_id == "a"
    assert store.get_plan("b") is None
    # once the first is no longer being made, a new plan may start
    store.update_plan("a", state=PlanState.DRAFTED)
    assert store.request_plan(record("c", now=102.0)) is None
