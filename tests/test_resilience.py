"""Resilience of the bot: lost, duplicated and reordered webhooks; two replicas on PostgreSQL.

Everything is asserted from fakehub's own records (``hub.events()``, ``hub.sender.records()``)
where possible, not from what the bot says about itself. The bots and runners are real
processes (``python -m stoneforge bot`` / ``runner``) talking to fakehub over HTTP and git.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.pipeline import Pipeline
from fakehub.delivery import DeliveryRecord, Faults
from fakehub.server import FakeHub
from tests.harness import World, free_port, open_world
from tests.harness.postgres import postgres_schema
from tests.harness.sprint import (
    ALL_KINDS,
    RUNNING,
    assert_merged_in_dependency_order,
    jobs_started,
    wait_merged,
)

pytestmark = pytest.mark.slow

SPRINT_TIMEOUT_S = 240.0  # the sprint has a red check fixed and a conflict resolved too
BOT_LOGIN = "stoneforge[bot]"


# --- shared helpers ------------------------------------------------------------------------


def run_sprint(pipe: Pipeline, timeout: float = SPRINT_TIMEOUT_S) -> dict[int, dict[str, Any]]:
    """File the sprint and wait until every task merged; fail fast on a failed task or crash."""
    pipe.file_sprint()
    return wait_merged(pipe, timeout)


def sender_of(record: DeliveryRecord) -> str:
    return str((record.payload.get("sender") or {}).get("login") or "")


# --- 1. lost webhooks --------------------------------------------------------------------


def test_sprint_merges_in_order_with_30_percent_of_webhooks_dropped(tmp_path: Path) -> None:
    pipe = Pipeline(
        work=tmp_path,
        workers=3,
        agent="script",
        webhook_faults=Faults(drop_rate=0.3, seed=1234),
        extra_env={"STONEFORGE_RECONCILE_INTERVAL_S": "2"},
    )
    try:
        pipe.start()
        tasks = run_sprint(pipe)
        events = pipe.hub.events()
        records = pipe.hub.sender.records()
    finally:
        pipe.stop()

    assert_merged_in_dependency_order(events, tasks)
    assert jobs_started(tmp_path) == {f"octo/demo#{n}": 1 for n in tasks}, "dispatched once each"
    dropped = [r for r in records if r.status == "dropped"]
    # The faults were real: a good share of deliveries was lost, maintainers' included.
    assert len(dropped) >= 0.15 * len(records), (len(dropped), len(records))
    lost_triggers = [
        r
        for r in dropped
        if r.event in ("issues", "issue_dependencies") and sender_of(r) != BOT_LOGIN
    ]
    assert lost_triggers, "no maintainer issue event was dropped; pick another seed"


# --- 2. duplicated and reordered webhooks ------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """fakehub with one repository; its webhooks go where nothing listens (fakehub records
    them), bots start on demand as processes (``world.start_bot``)."""
    dead_url = f"http://127.0.0.1:{free_port()}/webhooks/github"
    with open_world(tmp_path, webhook_url=dead_url) as w:
        yield w


def replay(bot_url: str, record: DeliveryRecord, guid: str | None = None) -> None:
    """POST a recorded delivery again, byte for byte: its signature stays valid."""
    body = json.dumps(record.payload).encode()
    headers = dict(record.request_headers)
    if guid is not None:
        headers["X-GitHub-Delivery"] = guid
    resp = httpx.post(f"{bot_url}/webhooks/github", content=body, headers=headers, timeout=10)
    assert resp.status_code in (200, 202), resp.text


def captured(hub: FakeHub, since: int = 0) -> list[DeliveryRecord]:
    """First-time deliveries fakehub tried to send (to the dead URL), in the order sent."""
    assert hub.sender.wait_idle(30)
    return [r for r in hub.sender.records()[since:] if not r.redelivery]


def task_state(bot_url: str) -> list[tuple[int, str, tuple[str, ...], bool]]:
    tasks = httpx.get(f"{bot_url}/api/tasks", timeout=5).json()
    return sorted((t["issue"], t["state"], tuple(t["blocked_by"]), t["ready"]) for t in tasks)


def settled(bot_url: str, quiet_s: float = 3.0, timeout: float = 60.0) -> list[Any]:
    """The bot's task view once it has not changed for ``quiet_s`` seconds.

    A bounded poll (every 0.3 s): the bot is another process and nothing signals its view.
    """
    deadline = time.monotonic() + timeout
    last, since = task_state(bot_url), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = task_state(bot_url)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"task state of {bot_url} never settled: {last}")


def test_duplicated_and_reordered_deliveries_converge_to_the_same_tasks(world: World) -> None:
    # Both bots start (and reconcile) before anything exists: their tasks can only come from
    # the deliveries we replay, and they re-read GitHub for every one of them.
    bot_a = world.start_bot("bot-a")
    bot_b = world.start_bot("bot-b")
    start = len(world.hub.sender.records())

    base = world.file("Add the greeting")
    text = world.file("Use the greeting", f"Blocked by #{base['number']}")
    native = world.file("Document the greeting")
    world.block(native["number"], base)
    outside = world.file("Design review (not a task)")
    waits = world.file("Ship after review", f"Depends on #{outside['number']}")
    done = world.file("Done already (not a task)")
    released = world.file("Released by a closed issue")
    world.block(released["number"], done)
    world.edit(done["number"], state="closed", state_reason="completed")
    dropped = world.file("Changed my mind")
    closed = world.file("Closed as not planned")
    edited = world.file("Edited later")
    late_dep = world.file("Dependency added after the label")
    for issue in (base, text, native, waits, released, dropped, closed, edited, late_dep):
        world.label(issue["number"])
    world.label(base["number"], "bug")
    world.unlabel(dropped["number"])
    world.edit(closed["number"], state="closed", state_reason="not_planned")
    world.edit(edited["number"], body=f"Blocked by #{text['number']}")
    world.block(late_dep["number"], native)
    deliveries = captured(world.hub, start)
    assert {r.event for r in deliveries} >= {"issues", "issue_dependencies"}

    for record in deliveries:
        replay(bot_a, record)
    state_a = settled(bot_a)

    rng = random.Random(20240917)
    shuffled: list[tuple[DeliveryRecord, str | None]] = []
    for i, record in enumerate(deliveries):
        shuffled.append((record, None))
        shuffled.append((record, str(uuid.uuid4()) if i % 2 else None))  # new id, or the same
    rng.shuffle(shuffled)
    for record, guid in shuffled:
        replay(bot_b, record, guid)
    state_b = settled(bot_b)

    assert state_b == state_a
    ref = "octo/app#{}".format
    expected = [
        (base["number"], "queued", (), True),
        (text["number"], "queued", (ref(base["number"]),), False),
        (native["number"], "queued", (ref(base["number"]),), False),
        (waits["number"], "queued", (ref(outside["number"]),), False),
        (released["number"], "queued", (ref(done["number"]),), True),
        (edited["number"], "queued", (ref(text["number"]),), False),
        (late_dep["number"], "queued", (ref(native["number"]),), False),
    ]
    assert state_a == sorted(expected)

    # Deliveries the App caused itself (its own label changes, and a trigger label it applied
    # with its installation token) make the bot write nothing to GitHub.
    own = world.file("Labeled by the App itself")
    world.label(own["number"], token=world.installation_token())
    world.quiet()
    mine = [r for r in captured(world.hub, start) if sender_of(r) == BOT_LOGIN]
    assert any(r.payload.get("issue", {}).get("number") == own["number"] for r in mine)
    assert any(r.payload.get("label", {}).get("name", "").startswith("stoneforge:") for r in mine)
    before = world.hub.events()
    sent_before = len(world.hub.sender.records())
    for record in mine:
        replay(bot_b, record)
    after = world.quiet(quiet_s=4.0)
    assert after == before
    assert len(world.hub.sender.records()) == sent_before
    assert settled(bot_b) == state_b


def test_trigger_label_from_a_user_without_write_access_starts_no_task(world: World) -> None:
    bot = world.start_bot("bot")
    world.hub.set_webhook_url(world.app.id, f"{bot}/webhooks/github")  # live deliveries
    for login, role in (("triager", "triage"), ("reader", "triage")):
        world.hub.create_user(login)
        world.hub.set_permission("octo/app", login, role)
    users = {u: world.hub.state.user(u) for u in ("triager", "reader")}
    by_triager = world.file("Labeled by a triager")
    by_reader = world.file("Labeled by a reader")
    control = world.file("Labeled by the lead")
    world.label(by_triager["number"], token=users["triager"].token)
    # GitHub (and fakehub) refuse labels from READ users outright, so the reader applies it
    # while they can and loses write-less triage right after: the bot sees a READ user.
    world.label(by_reader["number"], token=users["reader"].token)
    world.hub.set_permission("octo/app", "reader", "read")
    world.label(control["number"])

    world.wait_until(
        lambda: control["number"] in {t[0] for t in task_state(bot)}, 30, "the control"
    )
    world.quiet()
    assert [t[0] for t in settled(bot)] == [control["number"]]
    removed = {
        e["issue"]
        for e in world.hub.events("label_removed")
        if e["label"] == "agent-ready" and e["by"] == BOT_LOGIN
    }
    assert removed == {by_triager["number"], by_reader["number"]}


def test_trigger_label_from_a_non_writer_while_the_bot_was_down_starts_no_task(
    world: World,
) -> None:
    """The label was applied while no bot listened: start-up reconciliation must not trust it."""
    world.hub.create_user("triager")
    world.hub.set_permission("octo/app", "triager", "triage")
    issue = world.file("Labeled by a triager while the bot was down")
    control = world.file("Labeled by the lead")
    world.label(issue["number"], token=world.hub.state.user("triager").token)
    world.label(control["number"])
    bot = world.start_bot("bot")
    world.wait_until(lambda: task_state(bot), 30, "reconciliation to create tasks")
    assert [t[0] for t in settled(bot)] == [control["number"]]


# --- 3. two bot replicas on one PostgreSQL ----------------------------------------------


def test_two_bots_on_one_postgres_dispatch_every_task_exactly_once(tmp_path: Path) -> None:
    with postgres_schema("resilience") as url:
        pipe = Pipeline(
            work=tmp_path,
            workers=2,
            agent="script",
            database_url=url,
            bots=2,
            extra_env={"STONEFORGE_RECONCILE_INTERVAL_S": "2"},
        )
        try:
            pipe.start()
            tasks = run_sprint(pipe)
            views = [
                {t["issue"]: t for t in httpx.get(f"{u}/api/tasks", timeout=5).json()}
                for u in pipe.bot_urls
            ]
            events = pipe.hub.events()
        finally:
            pipe.stop()

    assert_merged_in_dependency_order(events, tasks)
    numbers = set(tasks)
    # Each job was handed to a runner once (the runners' logs, below: one implementation per
    # task). A task is labeled running at least once per agent job on its branch (its
    # implementation, and the fix round of the sprint's red check) and at most once per job of
    # any kind (the steward's rebase and resolution of its conflict may be over before the
    # labels are written).
    running = Counter(
        e["issue"] for e in events if e["type"] == "label_added" and e["label"] == RUNNING
    )
    agent_jobs = jobs_started(tmp_path, ("implement", "revise", "fix_checks"))
    every_job = jobs_started(tmp_path, ALL_KINDS)
    for n in numbers:
        key = f"octo/demo#{n}"
        assert agent_jobs[key] <= running[n] <= every_job[key], (n, running, every_job)
    assert sum(every_job.values()) > sum(agent_jobs.values()), "the steward's rounds ran"
    pushing = jobs_started(tmp_path, ("implement", "fix_checks", "resolve_conflicts"))
    # A runner pushes a task branch once per job; the bot's "update branch" pushes are the
    # merges fakehub logs as branch_updated, and the branch is deleted after its merge.
    updates = {e["head_sha"] for e in events if e["type"] == "branch_updated"}
    runner_pushes = Counter(
        e["ref"]
        for e in events
        if e["type"] == "push"
        and e["ref"].startswith("refs/heads/stoneforge/")
        and e["after"] not in updates
        and e["after"].strip("0")
    )
    branch_of = {t["branch"]: n for n, t in tasks.items() if t.get("branch")}
    by_task = {
        branch_of.get(ref.removeprefix("refs/heads/"), 0): c for ref, c in runner_pushes.items()
    }
    assert by_task == {n: pushing[f"octo/demo#{n}"] for n in numbers}, (runner_pushes, pushing)
    assert jobs_started(tmp_path) == {f"octo/demo#{n}": 1 for n in numbers}
    opened = Counter(e["head"] for e in events if e["type"] == "pr_opened")
    assert sorted(opened.values()) == [1] * len(numbers), opened
    assert {opened_head.split("/", 1)[1].split("-", 1)[0] for opened_head in opened} == {
        str(n) for n in numbers
    }
    for view in views:  # both replicas read the same store and agree: one attempt each
        assert {n: (t["state"], t["attempt"]) for n, t in view.items()} == dict.fromkeys(
            numbers, ("merged", 1)
        )
    workers = {t["worker"].split("/", 1)[0] for t in tasks.values()}
    assert workers == {"runner-1", "runner-2"}, "both replicas handed out work"
