from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.lifecycle import ChangesRequested
from bot.core.liveness import Waiting
from bot.core.model import IssueRef, Task, TaskState
from bot.store import Delivery, RepoRecord, Store, TranscriptRecord

REPO = "octo/demo"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    yield store
    store.close()


def full_task(n: int = 5, **fields: Any) -> Task:
    values: dict[str, Any] = {
        "repo": REPO,
        "number": n,
        "title": "Add /users endpoint ✓",
        "body": "blocked by #3\n```stoneforge-script\n{}\n```",
        "issue_id": 9_000_000_001,
        "installation_id": 42,
        "state": TaskState.IN_REVIEW,
        "blocked_by": (IssueRef(REPO, 3), IssueRef("octo/lib", 11)),
        "priority": 1,
        "attempt": 2,
        "worker": "runner-a/w1",
        "branch": "stoneforge/5-add-users-endpoint",
        "pr_number": 17,
        "head_sha": "a" * 40,
        "created_at": 1_764_000_000.125,
        "dispatched_at": 1_764_000_100.5,
        "agent_seconds": 3.25,
        "merged_at": None,
        "merge_sha": None,
        "lease_until": 1_764_000_400.75,
        "detail": "previous attempt: agent timed out",
        "cost_usd": 0.4375,
        "ready_at": 1_764_000_050.25,
        "comment_id": 3_000_000_000_123,
        "labeled_by": "octocat",
        "not_before": 1_764_000_900.5,
        "agent": "codex",
        "runs_on": ("linux", "gpu"),
        "review_id": 4_000_000_000_001,
        "cost_at_restart_usd": 0.125,
        "rate_limits": (("claude", 1_764_000_700.25), ("codex", 1_764_000_800.5)),
        "status_digest": "0123456789abcdef0123456789abcdef",
        "reason": ChangesRequested("rita", 4_000_000_000_001),
    }
    values.update(fields)
    return Task(**values)


def queued(n: int, repo: str = REPO) -> Task:
    return Task(repo=repo, number=n, title=f"task {n}", created_at=float(n))


# -- deliveries -----------------------------------------------------------------------------


def test_duplicate_delivery_is_stored_once(store: Store) -> None:
    payload = b'{"action": "labeled", "x": "\xc3\xa9"}'
    assert store.record_delivery("guid-1", "issues", "labeled", 7, payload, now=10.0) is True
    assert store.record_delivery("guid-1", "issues", "labeled", 7, b"other", now=11.0) is False
    assert store.delivery_count() == 1
    (delivery,) = store.unprocessed_deliveries()
    assert delivery.guid == "guid-1"
    assert (delivery.event, delivery.action, delivery.installation_id) == ("issues", "labeled", 7)
    assert delivery.payload == payload
    assert delivery.received_at == 10.0


def test_unprocessed_oldest_first_and_mark_processed(store: Store) -> None:
    store.record_delivery("c", "ping", None, None, b"{}", now=3.0)
    store.record_delivery("a", "issues", "opened", 1, b"{}", now=1.0)
    store.record_delivery("b", "pull_request", "closed", 1, b"{}", now=2.0)
    assert [d.guid for d in store.unprocessed_deliveries()] == ["a", "b", "c"]
    assert [d.guid for d in store.unprocessed_deliveries(limit=2)] == ["a", "b"]

    store.mark_processed("a", now=5.0)
    store.mark_processed("c", now=6.0, error="boom")
    assert [d.guid for d in store.unprocessed_deliveries()] == ["b"]
    assert store.delivery_count() == 3
    # A redelivery of a processed GUID is still a duplicate.
    assert store.record_delivery("a", "issues", "opened", 1, b"{}", now=7.0) is False
    assert [d.guid for d in store.unprocessed_deliveries()] == ["b"]


def test_deliveries_survive_reopening(store_url: str) -> None:
    first = Store(store_url)
    first.record_delivery("g", "issues", "opened", None, b"\x00\x01", now=1.0)
    first.close()
    second = Store(store_url)
    try:
        assert second.record_delivery("g", "issues", "opened", None, b"", now=2.0) is False
        assert second.unprocessed_deliveries()[0].payload == b"\x00\x01"
    finally:
        second.close()


# -- tasks ----------------------------------------------------------------------------------


def test_upsert_get_round_trips_every_field(store: Store) -> None:
    task = full_task()
    store.upsert_task(task)
    assert store.get_task(task.ref) == task
    assert store.get_task(IssueRef(REPO, 999)) is None

    replaced = full_task(
        title="new",
        state=TaskState.MERGED,
        blocked_by=(),
        worker=None,
        merged_at=1_764_000_500.0,
        merge_sha="b" * 40,
        detail=None,
        reason=None,
    )
    store.upsert_task(replaced)
    assert store.get_task(task.ref) == replaced
    assert store.list_tasks() == [replaced]


def test_update_task_changes_only_given_fields(store: Store) -> None:
    store.upsert_task(full_task())
    updated = store.update_task(
        IssueRef(REPO, 5), state=TaskState.FAILED, detail="check 'ci' failed", pr_number=None
    )
    expected = dataclasses.replace(
        full_task(), state=TaskState.FAILED, detail="check 'ci' failed", pr_number=None
    )
    assert updated == expected
    assert store.get_task(IssueRef(REPO, 5)) == expected
    again = store.update_task(IssueRef(REPO, 5), blocked_by=(IssueRef(REPO, 1),))
    assert store.get_task(IssueRef(REPO, 5)) == again
    assert again.blocked_by == (IssueRef(REPO, 1),)


def test_update_task_errors(store: Store) -> None:
    with pytest.raises(KeyError):
        store.update_task(IssueRef(REPO, 1), state=TaskState.RUNNING)
    store.upsert_task(queued(1))
    with pytest.raises(TypeError):
        store.update_task(IssueRef(REPO, 1), colour="red")
    with pytest.raises(TypeError):
        store.update_task(IssueRef(REPO, 1), number=2)


def test_list_tasks_filters(store: Store) -> None:
    store.upsert_task(queued(2))
    store.upsert_task(queued(1))
    store.upsert_task(dataclasses.replace(queued(3), state=TaskState.RUNNING))
    store.upsert_task(queued(1, repo="octo/lib"))
    assert [str(t.ref) for t in store.list_tasks()] == [
        "octo/demo#1",
        "octo/demo#2",
        "octo/demo#3",
        "octo/lib#1",
    ]
    assert [t.number for t in store.list_tasks(repo=REPO, states=[TaskState.QUEUED])] == [1, 2]
    assert [t.repo for t in store.list_tasks(states=[TaskState.QUEUED], repo="octo/lib")] == [
        "octo/lib"
    ]
    assert [t.number for t in store.list_tasks(states={TaskState.RUNNING})] == [3]
    assert store.list_tasks(states=[]) == []


def test_claim_takes_the_first_queued_candidate(store: Store) -> None:
    store.upsert_task(dataclasses.replace(queued(1), state=TaskState.RUNNING, worker="other"))
    store.upsert_task(dataclasses.replace(queued(2), state=TaskState.MERGED))
    store.upsert_task(dataclasses.replace(queued(3), attempt=1))
    store.upsert_task(queued(4))
    candidates = [IssueRef(REPO, n) for n in (99, 1, 2, 3, 4)]

    claimed = store.claim_task(candidates, worker="w1", now=100.0, lease_s=30.0)
    assert claimed is not None
    assert claimed.ref == IssueRef(REPO, 3)
    assert (claimed.state, claimed.worker, claimed.attempt) == (TaskState.RUNNING, "w1", 2)
    assert (claimed.dispatched_at, claimed.lease_until) == (100.0, 130.0)
    assert store.get_task(claimed.ref) == claimed
    other = store.get_task(IssueRef(REPO, 1))
    assert other is not None
    assert other.worker == "other"

    second = store.claim_task(candidates, worker="w2", now=101.0, lease_s=30.0)
    assert second is not None
    assert second.number == 4
    assert store.claim_task(candidates, worker="w3", now=102.0, lease_s=30.0) is None
    assert store.claim_task([], worker="w3", now=102.0, lease_s=30.0) is None


def test_concurrent_claims_never_share_a_task(store_url: str) -> None:
    setup = Store(store_url)
    refs = [IssueRef(REPO, n) for n in range(1, 21)]
    for ref in refs:
        setup.upsert_task(queued(ref.number))
    setup.close()

    results: dict[str, list[IssueRef]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        store = Store(store_url)  # one Store per thread, like separate bot replicas
        mine: list[IssueRef] = []
        try:
            start.wait()
            for _ in range(len(refs) + 1):  # bounded, so a broken claim cannot hang the test
                task = store.claim_task(refs, worker=name, now=1.0, lease_s=60.0)
                if task is None:
                    break
                mine.append(task.ref)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            store.close()
            results[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    claimed = Counter(ref for mine in results.values() for ref in mine)
    assert claimed == Counter(refs)  # every task exactly once

    check = Store(store_url)
    try:
        stored = check.list_tasks()
        assert {t.state for t in stored} == {TaskState.RUNNING}
        owner = {ref: name for name, mine in results.items() for ref in mine}
        assert all(t.worker == owner[t.ref] and t.attempt == 1 for t in stored)
    finally:
        check.close()


def test_concurrent_claims_through_one_shared_store(store: Store) -> None:
    refs = [IssueRef(REPO, n) for n in range(1, 21)]
    for ref in refs:
        store.upsert_task(queued(ref.number))
    claimed: list[IssueRef] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        start.wait()
        for _ in range(len(refs) + 1):
            task = store.claim_task(refs, worker=name, now=1.0, lease_s=60.0)
            if task is None:
                break
            with lock:
                claimed.append(task.ref)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed) == refs


def test_expired_leases(store: Store) -> None:
    store.upsert_task(dataclasses.replace(queued(1), state=TaskState.RUNNING, lease_until=50.0))
    store.upsert_task(dataclasses.replace(queued(2), state=TaskState.RUNNING, lease_until=150.0))
    store.upsert_task(dataclasses.replace(queued(3), state=TaskState.RUNNING, lease_until=None))
    store.upsert_task(dataclasses.replace(queued(4), state=TaskState.IN_REVIEW, lease_until=10.0))
    store.upsert_task(dataclasses.replace(queued(5), state=TaskState.RUNNING, lease_until=20.0))
    assert [t.number for t in store.expired_leases(now=100.0)] == [5, 1]
    assert [t.number for t in store.expired_leases(now=10.0)] == []


def test_update_task_sets_the_metric_fields(store: Store) -> None:
    store.upsert_task(queued(1))
    fresh = store.get_task(IssueRef(REPO, 1))
    assert fresh is not None
    assert fresh.cost_usd is None
    store.update_task(IssueRef(REPO, 1), cost_usd=1.5, ready_at=12.5, comment_id=2**40)
    task = store.get_task(IssueRef(REPO, 1))
    assert task is not None
    assert (task.cost_usd, task.ready_at, task.comment_id) == (1.5, 12.5, 2**40)


def test_task_counts_cover_every_state(store: Store) -> None:
    assert store.task_counts() == {state.value: 0 for state in TaskState}
    store.upsert_task(queued(1))
    store.upsert_task(queued(2))
    store.upsert_task(dataclasses.replace(queued(3), state=TaskState.MERGED))
    store.upsert_task(dataclasses.replace(queued(1, repo="octo/lib"), state=TaskState.RUNNING))
    counts = store.task_counts()
    assert counts == {
        "queued": 2,
        "running": 1,
        "in_review": 0,
        "merged": 1,
        "failed": 0,
        "cancelled": 0,
    }


# -- deliveries: lookups and stats ----------------------------------------------------------


def test_get_delivery_and_stats(store: Store) -> None:
    assert store.get_delivery("nope") is None
    assert store.delivery_stats() == {"total": 0, "unprocessed": 0, "failed": 0}
    store.record_delivery("a", "issues", "opened", 1, b"{1}", now=1.0)
    store.record_delivery("b", "issues", "closed", None, b"{2}", now=2.0)
    store.record_delivery("c", "ping", None, None, b"{3}", now=3.0)
    store.mark_processed("a", now=5.0)
    store.mark_processed("b", now=6.0, error="KeyError: 'issue'")
    assert store.get_delivery("a") == Delivery("a", "issues", "opened", 1, b"{1}", 1.0, 5.0, None)
    assert store.get_delivery("b") == Delivery(
        "b", "issues", "closed", None, b"{2}", 2.0, 6.0, "KeyError: 'issue'"
    )
    assert store.get_delivery("c") == Delivery("c", "ping", None, None, b"{3}", 3.0)
    assert store.delivery_stats() == {"total": 3, "unprocessed": 1, "failed": 1}


def test_deliveries_processed_since_for_other_replicas(store: Store) -> None:
    store.record_delivery("a", "check_run", "completed", 1, b'{"a": 1}', now=1.0)
    store.record_delivery("b", "issues", "opened", 1, b'{"b": 2}', now=2.0)
    store.record_delivery("c", "status", None, 1, b'{"c": 3}', now=3.0)
    store.record_delivery("d", "check_run", "created", 1, b'{"d": 4}', now=4.0)  # unprocessed
    store.mark_processed("c", now=7.0)
    store.mark_processed("a", now=6.0)
    store.mark_processed("b", now=8.0)
    events = ("check_run", "status")
    assert store.processed_since(5.0, events) == [("a", "check_run", 6.0), ("c", "status", 7.0)]
    assert store.processed_since(6.0, events) == [("c", "status", 7.0)]
    assert store.processed_since(5.0, events, limit=1) == [("a", "check_run", 6.0)]
    assert store.delivery_payloads(["c", "a", "zz"]) == {"a": b'{"a": 1}', "c": b'{"c": 3}'}


def test_handled_deliveries_are_pruned_after_their_time(store: Store) -> None:
    for n in range(7):
        store.record_delivery(f"old-{n}", "issues", "opened", 1, b"{}", now=float(n))
        store.mark_processed(f"old-{n}", now=10.0 + n)
    store.record_delivery("unhandled", "issues", "opened", 1, b"{}", now=1.0)
    store.record_delivery("recent", "issues", "opened", 1, b"{}", now=50.0)
    store.mark_processed("recent", now=60.0)
    assert store.prune_deliveries(before=20.0, batch=3) == 7  # in three transactions
    assert store.get_delivery("unhandled") is not None, "still to be handled"
    assert store.get_delivery("recent") is not None
    assert store.get_delivery("old-0") is None
    assert store.delivery_stats() == {"total": 2, "unprocessed": 1, "failed": 0}
    assert store.prune_deliveries(before=20.0) == 0


# -- repositories ---------------------------------------------------------------------------


def test_repos_upsert_filter_and_remove(store: Store) -> None:
    assert store.repos() == []
    store.upsert_repo("octo/lib", 7, default_branch="main")
    store.upsert_repo("octo/demo", 7, default_branch="trunk")
    store.upsert_repo("other/x", 8, default_branch="main")
    assert [r.repo for r in store.repos()] == ["octo/demo", "octo/lib", "other/x"]
    assert [r.repo for r in store.repos(7)] == ["octo/demo", "octo/lib"]
    assert store.repos(8) == [RepoRecord("other/x", 8, "main")]
    assert store.repos(9) == []

    assert store.mark_labels_ready("octo/demo") is True
    assert store.save_config("octo/demo", text="version: 1\n", sha="c" * 40, error=None) is True
    # Re-installing (or a renamed default branch) keeps labels and config.
    store.upsert_repo("octo/demo", 9, default_branch="main")
    assert store.repos(9) == [
        RepoRecord("octo/demo", 9, "main", True, "version: 1\n", "c" * 40, None)
    ]

    store.remove_repo("octo/demo")
    store.remove_repo("never/installed")
    assert [r.repo for r in store.repos()] == ["octo/lib", "other/x"]
    assert store.mark_labels_ready("octo/demo") is False
    assert store.save_config("octo/demo", text="x", sha="d", error=None) is False


def test_save_config_keeps_the_last_valid_config_on_error(store: Store) -> None:
    store.upsert_repo(REPO, 1, default_branch="main")
    store.save_config(REPO, text="version: 1\nagent: a\n", sha="a" * 40, error=None)
    store.save_config(REPO, text="version: 9\n", sha="b" * 40, error="version: must be 1")
    (record,) = store.repos()
    assert (record.config_text, record.config_sha) == ("version: 1\nagent: a\n", "a" * 40)
    assert record.config_error == "version: must be 1"
    assert record.labels_ready is False

    store.save_config(REPO, text="version: 1\nagent: b\n", sha="e" * 40, error=None)
    (record,) = store.repos()
    assert (record.config_text, record.config_sha, record.config_error) == (
        "version: 1\nagent: b\n",
        "e" * 40,
        None,
    )
    store.save_config(REPO, text=None, sha=None, error=None)  # the file was deleted
    (record,) = store.repos()
    assert (record.config_text, record.config_sha, record.config_error) == (None, None, None)


# -- agent spend ----------------------------------------------------------------------------


def test_costs_add_up_per_repo_and_day(store: Store) -> None:
    assert store.cost(REPO, "2026-01-02") == 0.0
    store.add_cost(REPO, "2026-01-02", 0.25)
    store.add_cost(REPO, "2026-01-02", 1.125)
    store.add_cost(REPO, "2026-01-03", 2.0)
    store.add_cost("octo/lib", "2026-01-02", 4.0)
    assert store.cost(REPO, "2026-01-02") == 1.375
    assert store.cost(REPO, "2026-01-03") == 2.0
    assert store.cost("octo/lib", "2026-01-02") == 4.0
    assert store.cost("octo/lib", "2026-01-03") == 0.0


# -- steward locks --------------------------------------------------------------------------


def test_steward_lock_is_exclusive_across_stores(store_url: str) -> None:
    first, second = Store(store_url), Store(store_url)
    try:
        with first.steward_lock(REPO, "main") as held:
            assert held is True
            with second.steward_lock(REPO, "main") as other:
                assert other is False
            with first.steward_lock(REPO, "main") as again:
                assert again is False  # not re-entrant, on either backend
            with second.steward_lock(REPO, "release-1") as other_base:
                assert other_base is True
            with second.steward_lock("octo/lib", "main") as other_repo:
                assert other_repo is True
        with second.steward_lock(REPO, "main") as after_release:
            assert after_release is True
            with first.steward_lock(REPO, "main") as blocked:
                assert blocked is False
        # A failed attempt does not release the holder's lock on exit.
        with first.steward_lock(REPO, "main") as held, second.steward_lock(REPO, "main") as no:
            assert (held, no) == (True, False)
            with second.steward_lock(REPO, "main") as still_no:
                assert still_no is False
    finally:
        first.close()
        second.close()


def test_steward_lock_is_released_when_the_block_raises(store_url: str) -> None:
    first, second = Store(store_url), Store(store_url)
    try:

        def failing_pass() -> None:
            with first.steward_lock(REPO, "main") as held:
                assert held is True
                raise RuntimeError("steward pass failed")

        with pytest.raises(RuntimeError, match="steward pass failed"):
            failing_pass()
        with second.steward_lock(REPO, "main") as held:
            assert held is True
    finally:
        first.close()
        second.close()


def test_sqlite_lease_is_renewed_while_held(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'locks.sqlite3'}"
    first = Store(url, lock_lease_s=0.3)
    second = Store(url, lock_lease_s=0.3)
    try:
        with first.steward_lock(REPO, "main") as held:
            assert held is True
            deadline = time.monotonic() + 1.2  # four leases long
            while time.monotonic() < deadline:
                with second.steward_lock(REPO, "main") as other:
                    assert other is False
                time.sleep(0.05)
        with second.steward_lock(REPO, "main") as after:
            assert after is True
    finally:
        first.close()
        second.close()


# -- transcripts ----------------------------------------------------------------------------


def test_transcripts_round_trip_compressed_and_per_task(store: Store) -> None:
    text = ("".join(f'{{"type": "assistant", "n": {i}}}\n' for i in range(2000))).encode()
    first = TranscriptRecord("t" * 32, REPO, 5, 1, "runner-a/w1", "claude", 10.0, len(text))
    second = dataclasses.replace(first, id="u" * 32, attempt=2, created_at=20.0, size=3)
    other = dataclasses.replace(first, id="v" * 32, number=6)
    store.add_transcript(second, b"abc")
    store.add_transcript(first, text)
    store.add_transcript(other, b"x")
    got = store.transcript("t" * 32)
    assert got == (first, text)
    assert store.transcript("missing") is None
    assert store.transcripts_for(IssueRef(REPO, 5)) == [first, second]
    assert store.transcripts_for(IssueRef(REPO, 7)) == []


# -- the working set ------------------------------------------------------------------------


def merged(n: int, at: float | None, *blockers: IssueRef, repo: str = REPO) -> Task:
    return dataclasses.replace(
        queued(n, repo=repo), state=TaskState.MERGED, merged_at=at, blocked_by=blockers
    )


def test_working_set_leaves_out_only_merged_tasks_older_than_the_cutoff(store: Store) -> None:
    store.upsert_task(merged(1, 100.0))  # merged long ago
    store.upsert_task(merged(2, 1000.0))  # merged at the cutoff: still in
    store.upsert_task(merged(3, 2000.0))
    store.upsert_task(merged(4, None))  # no merge time known: kept, never dropped by guess
    store.upsert_task(queued(5))
    others = (TaskState.RUNNING, TaskState.IN_REVIEW, TaskState.FAILED, TaskState.CANCELLED)
    for n, state in enumerate(others, start=6):  # merged_at never drops a task not merged
        store.upsert_task(dataclasses.replace(queued(n), state=state, merged_at=1.0))
    store.upsert_task(queued(1, repo="octo/lib"))
    working = store.working_set(1000.0)
    assert [str(t.ref) for t in working.tasks] == [
        "octo/demo#2",
        "octo/demo#3",
        "octo/demo#4",
        "octo/demo#5",
        "octo/demo#6",
        "octo/demo#7",
        "octo/demo#8",
        "octo/demo#9",
        "octo/lib#1",
    ]
    assert working.done == frozenset()
    # The history stays in the store, for reports.
    assert len(store.list_tasks()) == len(working.tasks) + 1
    assert store.get_task(IssueRef(REPO, 1)) == merged(1, 100.0)


def test_working_set_knows_blockers_that_left_it_as_done(store: Store) -> None:
    old, old_lib = IssueRef(REPO, 1), IssueRef("octo/lib", 7)
    store.upsert_task(merged(1, 100.0))
    store.upsert_task(merged(7, 100.0, repo="octo/lib"))
    store.upsert_task(merged(2, 100.0, old))  # a merged task's own blockers are not looked up
    never = IssueRef(REPO, 99)  # not a task at all: not done (the graph asks GitHub)
    store.upsert_task(dataclasses.replace(queued(3), blocked_by=(old, old_lib, never)))
    store.upsert_task(dataclasses.replace(queued(4), blocked_by=(IssueRef(REPO, 3),)))
    working = store.working_set(1000.0)
    assert [t.number for t in working.tasks] == [3, 4]
    assert working.done == {old, old_lib}
    assert store.merged_tasks([old, old_lib, never, IssueRef(REPO, 3)]) == {old, old_lib}
    # Asked again (remembered now), and after a remembered blocker is requeued: a task in the
    # set is judged by its own state, never by what was remembered.
    assert store.working_set(1000.0).done == {old, old_lib}
    store.update_task(old, state=TaskState.QUEUED)
    again = store.working_set(1000.0)
    assert again.done == {old_lib}
    assert IssueRef(REPO, 1) in {t.ref for t in again.tasks}


def test_working_set_looks_up_many_blockers_in_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.store.working_set._LOOKUP_CHUNK", 3)
    gone = [IssueRef(REPO, n) for n in range(100, 108)]
    for ref in gone:
        store.upsert_task(merged(ref.number, 1.0))
    store.upsert_task(dataclasses.replace(queued(1), blocked_by=(*gone, IssueRef(REPO, 999))))
    assert store.working_set(10.0).done == set(gone)


def test_a_command_comment_is_taken_once_on_either_database(store: Store) -> None:
    # psycopg reports -1 as the rowcount of INSERT ... ON CONFLICT DO NOTHING: judged by the
    # rowcount, no command was ever taken on PostgreSQL.
    assert store.take_command(7, "octo/app", 1, "plan", "lead", 1.0) is True
    assert store.take_command(7, "octo/app", 1, "plan", "lead", 2.0) is False
    assert store.command_record(7) == ("plan", "lead", None)


def test_a_check_is_re_run_once_per_head_and_its_flake_recorded_once(store_url: str) -> None:
    first = Store(store_url)
    try:
        assert first.take_rerun("o/r", "sha1", "ci", 7, now=1.0)
        assert not first.take_rerun("o/r", "sha1", "ci", 9, now=2.0), "once per head and check"
        assert first.take_rerun("o/r", "sha2", "ci", 8, now=2.0)
    finally:
        first.close()
    again = Store(store_url)  # a restarted bot reads what the last one asked for
    try:
        assert again.reruns("o/r", {"sha1", "sha3"}) == {("o/r", "sha1", "ci"): 7}
        assert again.reruns("o/other", {"sha1"}) == {}
        assert again.take_flake("o/r", "sha1", "ci")
        assert not again.take_flake("o/r", "sha1", "ci")
        assert not again.take_flake("o/r", "sha3", "ci"), "never re-run: no flake"
    finally:
        again.close()


def test_waits_outlive_a_restart_and_are_replaced_per_repository(store_url: str) -> None:
    first = Store(store_url)
    try:
        first.put_waits("o/r", {1: Waiting("checks:ci", 5.0), 2: Waiting("front", 6.0, True)})
        first.put_waits("o/other", {1: Waiting("rerun:ci", 7.0)})
    finally:
        first.close()
    again = Store(store_url)  # a restarted bot keeps the clocks and what it told
    try:
        assert again.waits("o/r") == {
            1: Waiting("checks:ci", 5.0),
            2: Waiting("front", 6.0, told=True),
        }
        again.put_waits("o/r", {2: Waiting("front", 6.0, True)})  # 1 waits no more
        assert again.waits("o/r") == {2: Waiting("front", 6.0, told=True)}
        assert again.waits("o/other") == {1: Waiting("rerun:ci", 7.0)}
    finally:
        again.close()
