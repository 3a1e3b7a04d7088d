"""Resilience of the bot: lost, duplicated and reordered webhooks; two replicas on PostgreSQL.

Everything is asserted from fakehub's own records (``hub.events()``, ``hub.sender.records()``)
where possible, not from what the bot says about itself. The bots and runners are real
processes (``python -m stoneforge bot`` / ``runner``) talking to fakehub over HTTP and git.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from demo.pipeline import APP_EVENTS, APP_PERMISSIONS, Pipeline, free_port
from demo.sample import SPRINT
from fakehub.delivery import DeliveryRecord, Faults
from fakehub.server import FakeHub

pytestmark = pytest.mark.slow

SPRINT_TIMEOUT_S = 110.0
BOT_LOGIN = "stoneforge[bot]"
RUNNING = "stoneforge:running"


# --- shared helpers ------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def log_tails(work: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n" + log.read_text(errors="replace")[-2500:]
        for log in sorted(work.glob("*.log"))
    )


def run_sprint(pipe: Pipeline, timeout: float = SPRINT_TIMEOUT_S) -> dict[int, dict[str, Any]]:
    """File the sprint and wait until every task merged; fail fast on a failed task or crash."""
    pipe.file_sprint()
    deadline = time.monotonic() + timeout
    tasks: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        tasks = {t["issue"]: t for t in pipe.tasks()} or tasks
        if len(tasks) == len(SPRINT) and all(t["state"] == "merged" for t in tasks.values()):
            return tasks
        bad = {n: (t["state"], t["detail"]) for n, t in tasks.items() if t["state"] == "failed"}
        dead = [p.args for p in pipe.procs if p.poll() is not None]
        if bad or dead:
            raise AssertionError(f"failed tasks {bad}, exited {dead}\n{log_tails(pipe.work)}")
        time.sleep(0.5)
    states = {n: t["state"] for n, t in tasks.items()}
    raise AssertionError(
        f"sprint did not merge in {timeout:.0f} s: {states}\n{log_tails(pipe.work)}"
    )


def assert_merged_in_dependency_order(
    events: list[dict[str, Any]], tasks: dict[int, dict[str, Any]]
) -> None:
    """Every task's PR merged green, and no task was dispatched before its blockers merged."""
    merges = {e["pr"]: e for e in events if e["type"] == "merge"}
    pr_of = {issue: t["pr"] for issue, t in tasks.items()}
    assert all(pr_of[i] in merges for i in tasks), "every task's pull request merged"
    for merge in merges.values():
        assert merge["checks"].get("ci") == "success", merge
    running_at: dict[int, float] = {}
    for e in events:
        if e["type"] == "label_added" and e["label"] == RUNNING:
            running_at.setdefault(e["issue"], e["at"])
    first_push: dict[int, float] = {}
    for e in events:
        if e["type"] == "push" and e["ref"].startswith("refs/heads/stoneforge/"):
            issue = int(e["ref"].removeprefix("refs/heads/stoneforge/").split("-", 1)[0])
            first_push.setdefault(issue, e["at"])
    for issue, task in tasks.items():
        assert task["blocked_by"] or issue in running_at, issue
        for blocker in task["blocked_by"]:
            number = int(blocker.rsplit("#", 1)[1])
            blocker_merged = merges[pr_of[number]]["at"]
            assert running_at[issue] >= blocker_merged, (issue, number)
            assert first_push[issue] > blocker_merged, (issue, number)
            assert merges[pr_of[issue]]["at"] > blocker_merged, (issue, number)


def jobs_started(work: Path) -> Counter[str]:
    """The runners' own record: jobs started per task, from their logs.

    A second dispatch can leave no trace on fakehub (the "running" label is already there, an
    identical commit pushes nothing, a second pull request for the head is refused).
    """
    return Counter(
        match.group(1).rsplit("@", 1)[0]
        for log in work.glob("runner*.log")
        for match in re.finditer(r"job_started worker=\S+ job=(\S+)", log.read_text())
    )


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


@dataclass
class World:
    """fakehub with one repository and bots started on demand as processes."""

    tmp: Path
    hub: FakeHub
    app_id: int
    installation_id: int
    secret: str
    key_path: Path
    lead_token: str
    dead_url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.hub.api_url,
            headers={"Authorization": f"token {token or self.lead_token}"},
            timeout=10,
        )

    def file(self, title: str, body: str = "", token: str | None = None) -> dict[str, Any]:
        with self.api(token) as api:
            resp = api.post("/repos/octo/app/issues", json={"title": title, "body": body})
            resp.raise_for_status()
            return dict(resp.json())

    def label(self, number: int, name: str = "agent-ready", token: str | None = None) -> None:
        with self.api(token) as api:
            api.post(
                f"/repos/octo/app/issues/{number}/labels", json={"labels": [name]}
            ).raise_for_status()

    def unlabel(self, number: int, name: str = "agent-ready") -> None:
        with self.api() as api:
            api.delete(f"/repos/octo/app/issues/{number}/labels/{name}").raise_for_status()

    def block(self, number: int, blocker: dict[str, Any]) -> None:
        with self.api() as api:
            api.post(
                f"/repos/octo/app/issues/{number}/dependencies/blocked_by",
                json={"issue_id": blocker["id"]},
            ).raise_for_status()

    def edit(self, number: int, **fields: Any) -> None:
        with self.api() as api:
            api.patch(f"/repos/octo/app/issues/{number}", json=fields).raise_for_status()

    def app_token(self) -> str:
        now = int(time.time())
        token = jwt.encode(
            {"iat": now - 30, "exp": now + 300, "iss": str(self.app_id)},
            self.key_path.read_text(),
            algorithm="RS256",
        )
        resp = httpx.post(
            f"{self.hub.api_url}/app/installations/{self.installation_id}/access_tokens",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        resp.raise_for_status()
        return str(resp.json()["token"])

    def start_bot(self, name: str) -> str:
        """A fresh bot (own SQLite database) that reconciles only at start-up."""
        port = free_port()
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ} | {
            "PYTHONUNBUFFERED": "1",
            "STONEFORGE_APP_ID": str(self.app_id),
            "STONEFORGE_PRIVATE_KEY": str(self.key_path),
            "STONEFORGE_WEBHOOK_SECRET": self.secret,
            "STONEFORGE_GITHUB_API_URL": self.hub.api_url,
            "STONEFORGE_DATABASE_URL": f"sqlite:///{self.tmp / (name + '.db')}",
            "STONEFORGE_RUNNER_TOKEN": "unused",
            "STONEFORGE_DEFAULT_AGENT": "script",
            "STONEFORGE_RECONCILE_INTERVAL_S": "3600",
            "STONEFORGE_STEWARD_INTERVAL_S": "1",
        }
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        argv = [sys.executable, "-m", "stoneforge", "bot", "--port", str(port)]
        argv += ["--log-level", "info"]
        self.procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), 30, f"{name} to start")
        return url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    hub = FakeHub(tmp_path / "hub")
    hub.start()
    dead_url = f"http://127.0.0.1:{free_port()}/webhooks/github"  # nothing listens there
    secret = secrets.token_hex(16)
    lead = hub.create_user("lead")
    hub.create_user("octo", type="Organization")
    app = hub.create_app(
        slug="stoneforge",
        webhook_url=dead_url,
        webhook_secret=secret,
        events=APP_EVENTS,
        permissions=APP_PERMISSIONS,
    )
    hub.create_repo("octo", "app", {"README.md": "hello\n"})
    hub.set_permission("octo/app", "lead", "admin")
    inst = hub.install_app(app.id, "octo", ["app"])
    key = tmp_path / "app-key.pem"
    key.write_text(app.private_key_pem)
    w = World(tmp_path, hub, app.id, inst, secret, key, lead.token, dead_url)
    try:
        yield w
    finally:
        for proc in w.procs:
            proc.terminate()
        for proc in w.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        hub.stop()


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
    """Poll the bot's task view until it has not changed for ``quiet_s`` seconds."""
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


def quiet_hub(hub: FakeHub, quiet_s: float = 3.0, timeout: float = 60.0) -> list[dict[str, Any]]:
    """fakehub's event log once nothing has been written for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = len(hub.events()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        count = len(hub.events())
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return hub.events()
    raise AssertionError("fakehub never went quiet")


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
    world.label(own["number"], token=world.app_token())
    quiet_hub(world.hub)
    mine = [r for r in captured(world.hub, start) if sender_of(r) == BOT_LOGIN]
    assert any(r.payload.get("issue", {}).get("number") == own["number"] for r in mine)
    assert any(r.payload.get("label", {}).get("name", "").startswith("stoneforge:") for r in mine)
    before = world.hub.events()
    sent_before = len(world.hub.sender.records())
    for record in mine:
        replay(bot_b, record)
    after = quiet_hub(world.hub, quiet_s=4.0)
    assert after == before
    assert len(world.hub.sender.records()) == sent_before
    assert settled(bot_b) == state_b


def test_trigger_label_from_a_user_without_write_access_starts_no_task(world: World) -> None:
    bot = world.start_bot("bot")
    world.hub.set_webhook_url(world.app_id, f"{bot}/webhooks/github")  # live deliveries
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

    wait_until(lambda: control["number"] in {t[0] for t in task_state(bot)}, 30, "the control")
    quiet_hub(world.hub)
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
    wait_until(lambda: task_state(bot), 30, "reconciliation to create tasks")
    assert [t[0] for t in settled(bot)] == [control["number"]]


# --- 3. two bot replicas on one PostgreSQL ----------------------------------------------


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema on the test server; yields a URL whose search_path points at it."""
    base = os.environ.get(
        "STONEFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    engine = sa.create_engine(base, connect_args={"connect_timeout": 3})
    schema = f"resilience_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unreachable at {base}: {exc.orig}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def test_two_bots_on_one_postgres_dispatch_every_task_exactly_once(tmp_path: Path) -> None:
    with postgres_schema() as url:
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
    running = Counter(
        e["issue"] for e in events if e["type"] == "label_added" and e["label"] == RUNNING
    )
    assert running == dict.fromkeys(numbers, 1), "each task was handed to a runner once"
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
    assert sorted(runner_pushes.values()) == [1] * len(numbers), runner_pushes
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
