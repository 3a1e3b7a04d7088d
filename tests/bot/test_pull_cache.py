"""The steward's pull request snapshots: kept until an event says they changed, never acted on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.adapters.github import MergeOutcome
from bot.core.lifecycle import ChecksFailed
from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import PullSnapshot, Review
from bot.pull_cache import PullCache
from bot.service import Bot
from bot.settings import BotSettings
from bot.store import Store
from tests.bot.fakegithub import FakeGitHub

REPO = "octo/app"


def _snap(number: int = 1, **fields: Any) -> PullSnapshot:
    base: dict[str, Any] = {
        "number": number,
        "state": "open",
        "merged": False,
        "head_sha": f"{number:040x}",
        "head_ref": f"stoneforge/{number}-task",
        "base_ref": "main",
        "mergeable": True,
        "mergeable_state": "clean",
        "checks": {"ci": ("in_progress", None)},
        "required": ("ci",),
    }
    return PullSnapshot(**(base | fields))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_snapshot_is_kept_until_its_pull_request_head_or_branch_changes() -> None:
    cache = PullCache(ttl_s=60)
    for forget in (
        {"pull": 1},
        {"sha": _snap().head_sha},
        {"branch": _snap().head_ref},
    ):
        assert cache.put(REPO, _snap(), cache.epoch())
        cache.forget("other/repo", **forget)  # another repository's change
        cache.forget(REPO, pull=2, sha="f" * 40, branch="stoneforge/2-other")
        assert cache.get(REPO, 1) == _snap()
        cache.forget(REPO, **forget)
        assert cache.get(REPO, 1) is None, forget


def test_a_moved_base_does_not_drop_the_pull_requests_on_it() -> None:
    cache = PullCache(ttl_s=60)
    cache.put(REPO, _snap(), cache.epoch())
    cache.note("push", {"repository": {"full_name": REPO}, "ref": "refs/heads/main"})
    assert cache.get(REPO, 1) is not None  # the steward reads the front fresh anyway


def test_snapshots_expire_and_unknown_mergeability_is_never_kept() -> None:
    clock = _Clock()
    cache = PullCache(ttl_s=60, clock=clock)
    assert not cache.put(REPO, _snap(mergeable=None), cache.epoch())
    assert not cache.put(REPO, _snap(mergeable_state="unknown"), cache.epoch())
    assert cache.put(REPO, _snap(), cache.epoch())
    clock.now += 59
    assert cache.get(REPO, 1) is not None
    clock.now += 2
    assert cache.get(REPO, 1) is None


def test_snapshots_nobody_asks_for_again_do_not_pile_up() -> None:
    clock = _Clock()
    cache = PullCache(ttl_s=60, clock=clock)
    for number in range(1, 10_001):  # pull requests that left review without an event
        cache.put(REPO, _snap(number), cache.epoch())
    clock.now += 61
    cache.put(REPO, _snap(10_001), cache.epoch())
    assert len(cache._entries) == 1


def test_a_read_overtaken_by_an_event_is_not_kept() -> None:
    cache = PullCache(ttl_s=60)
    started = cache.epoch()  # the steward starts reading pull request 1...
    cache.forget(REPO, sha=_snap().head_sha)  # ...a check on its head finishes meanwhile
    assert not cache.put(REPO, _snap(), started)
    assert cache.get(REPO, 1) is None
    assert cache.put(REPO, _snap(), cache.epoch())  # a read started after it is kept


PULL = {"pull_request": {"number": 1, "head": {"sha": "0" * 40}}}


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("pull_request", {**PULL, "action": "synchronize"}),
        ("pull_request", {**PULL, "action": "closed"}),
        ("pull_request", {**PULL, "action": "edited", "changes": {"base": {"ref": {}}}}),
        ("pull_request_review", {**PULL, "action": "submitted"}),
        ("check_run", {"action": "completed", "check_run": {"head_sha": f"{1:040x}"}}),
        ("check_suite", {"action": "completed", "check_suite": {"head_sha": f"{1:040x}"}}),
        ("status", {"state": "failure", "sha": f"{1:040x}"}),
        ("push", {"ref": "refs/heads/stoneforge/1-task"}),
    ],
)
def test_webhooks_that_change_a_pull_request_drop_it(event: str, payload: dict[str, Any]) -> None:
    cache = PullCache(ttl_s=60)
    cache.put(REPO, _snap(), cache.epoch())
    cache.note(event, {**payload, "repository": {"full_name": "other/repo"}})
    assert cache.get(REPO, 1) is not None
    cache.note(event, {**payload, "repository": {"full_name": REPO}})
    assert cache.get(REPO, 1) is None


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("pull_request", {**PULL, "action": "labeled"}),
        ("pull_request", {**PULL, "action": "edited", "changes": {"body": {"from": "x"}}}),
        ("check_run", {"action": "created", "check_run": {"head_sha": f"{1:040x}"}}),
        ("check_suite", {"action": "requested", "check_suite": {"head_sha": f"{1:040x}"}}),
        ("status", {"state": "pending", "sha": f"{1:040x}"}),
    ],
)
def test_webhooks_that_change_nothing_the_steward_acts_on_keep_it(
    event: str, payload: dict[str, Any]
) -> None:
    cache = PullCache(ttl_s=60)
    cache.put(REPO, _snap(), cache.epoch())
    cache.note(event, {**payload, "repository": {"full_name": REPO}})
    assert cache.get(REPO, 1) is not None


# --- the steward with the cache -----------------------------------------------------------


class _PullsGitHub(FakeGitHub):
    """Pull requests whose snapshots the test sets; counts the steward's reads and merges."""

    def __init__(self) -> None:
        super().__init__()
        self.pulls: dict[int, PullSnapshot] = {}
        self.reads: list[int] = []
        self.merged: list[tuple[int, str]] = []

    async def pull(
        self, inst: int, repo: str, number: int, extra: tuple[str, ...] = ()
    ) -> PullSnapshot:
        self.reads.append(number)
        return self.pulls[number]

    async def reviews(self, inst: int, repo: str, number: int) -> list[Review]:
        return []

    async def merge(
        self,
        installation_id: int,
        repo: str,
        number: int,
        *,
        sha: str,
        method: Literal["merge", "squash", "rebase"],
        title: str,
    ) -> MergeOutcome:
        self.merged.append((number, sha))
        return MergeOutcome(True, "e" * 40, 200, "merged")

    async def delete_branch(self, inst: int, repo: str, branch: str) -> None:
        return None

    async def retarget_pull(self, inst: int, repo: str, number: int, base: str) -> bool:
        return True

    async def contains(self, inst: int, repo: str, commit: str, head: str) -> bool:
        return True


@pytest.fixture
def steward(tmp_path: Path) -> Any:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    github = _PullsGitHub()
    bot = Bot(BotSettings(app_id=1, private_key=pem, webhook_secret="s"), store, github)
    bot.reporter.settle_s = 0
    for number in (1, 2):
        github.add_issue(REPO, number)
        snap = _snap(number)
        github.pulls[number] = snap
        store.create_task(
            Task(
                REPO,
                number,
                f"Task {number}",
                state=TaskState.IN_REVIEW,
                installation_id=7,
                pr_number=number,
                head_sha=snap.head_sha,
                created_at=time.time(),
            )
        )
    try:
        yield bot.steward, github, bot
    finally:
        store.close()


def test_the_steward_reads_each_waiting_pull_request_once_and_acts_only_on_fresh_ones(
    steward: Any,
) -> None:
    stew, github, bot = steward

    async def run() -> None:
        await stew.pass_repo(REPO)
        assert sorted(github.reads) == [1, 2]
        await stew.pass_repo(REPO)  # nothing changed: nothing read
        assert sorted(github.reads) == [1, 2]

        # Pull request 1's check goes green, but the webhook went to another replica: the
        # remembered snapshot says "pending", so the steward waits; it never merges from it.
        green = {"ci": ("completed", "success")}
        github.pulls[1] = dataclasses.replace(github.pulls[1], checks=green)
        await stew.pass_repo(REPO)
        assert github.merged == []

        # The webhook arrives: pull request 1 is read again, found green and merged.
        done = {"head_sha": github.pulls[1].head_sha}
        bot.pulls.note(
            "check_run",
            {"repository": {"full_name": REPO}, "action": "completed", "check_run": done},
        )
        await stew.pass_repo(REPO)
        assert github.reads.count(1) == 2
        assert github.reads.count(2) == 1
        assert github.merged == [(1, github.pulls[1].head_sha)]

        # A remembered green snapshot is read again before it is merged.
        github.pulls[2] = dataclasses.replace(github.pulls[2], checks=green)
        bot.pulls.put(REPO, github.pulls[2], bot.pulls.epoch())  # as if remembered green
        github.pulls[2] = dataclasses.replace(
            github.pulls[2], checks={"ci": ("completed", "failure")}
        )
        await stew.pass_repo(REPO)
        assert github.reads.count(2) == 2, "read fresh before acting"
        assert [n for n, _ in github.merged] == [1], "the fresh read was red: never merged"
        # red: back to its agent to fix the checks (steward.fix_attempts), never merged
        sent_back = bot.store.get_task(IssueRef(REPO, 2))
        assert sent_back.state is TaskState.QUEUED
        assert isinstance(sent_back.reason, ChecksFailed)
        await bot.reporter.idle()

    asyncio.run(run())


def test_the_steward_catches_up_on_deliveries_another_replica_processed(steward: Any) -> None:
    """A webhook that reached another replica (stored and processed there, in the shared store)
    drops the remembered snapshot here too; one this replica noted is not noted again."""
    stew, github, bot = steward

    def delivered(guid: str, sha: str) -> bytes:
        body = {"repository": {"full_name": REPO}, "action": "completed",
                "check_run": {"head_sha": sha}}  # fmt: skip
        raw = json.dumps(body).encode()
        bot.store.record_delivery(guid, "check_run", "completed", 7, raw, time.time())
        bot.store.mark_processed(guid, time.time())
        return raw

    async def run() -> None:
        await stew.pass_all()
        assert sorted(github.reads) == [1, 2]
        green = {"ci": ("completed", "success")}
        github.pulls[1] = dataclasses.replace(github.pulls[1], checks=green)
        delivered("from-replica-b", github.pulls[1].head_sha)
        stew._caught_up_at = 0.0  # as if a second had passed since the last look
        await stew.pass_all()
        assert github.reads.count(1) == 2, "the other replica's event dropped the snapshot"
        assert github.merged == [(1, github.pulls[1].head_sha)]

        # This replica's own delivery, noted as it came in: the catch-up leaves it alone.
        raw = delivered("ours", github.pulls[2].head_sha)
        bot.pulls.note("check_run", json.loads(raw), "ours")
        await stew.pass_all()  # reads 2 again (the note), remembers it
        reads = github.reads.count(2)
        stew._caught_up_at = 0.0
        await stew.pass_all()
        assert github.reads.count(2) == reads, "noted once, not again from the store"
        await bot.reporter.idle()

    asyncio.run(run())
