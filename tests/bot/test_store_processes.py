"""Several OS processes on one database: migrations, task claims and steward locks.

Each child is ``python -c CHILD <mode> <url> ...`` with its own ``Store``. It prints ``ready``
once the Store is open, waits for ``go`` on stdin (so the children start racing together),
and prints one JSON line with its result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from bot.core.model import IssueRef, Task, TaskState
from bot.store import Store

REPO = "octo/demo"

CHILD = r"""
import json, sys, time
from bot.core.model import IssueRef
from bot.store import Store

mode, url, name = sys.argv[1:4]
store = Store(url, lock_lease_s=1.0)
print("ready", flush=True)
sys.stdin.readline()
if mode == "claim":
    refs = [IssueRef("octo/demo", n) for n in range(1, int(sys.argv[4]) + 1)]
    mine = []
    for _ in range(len(refs) + 1):  # bounded, so a broken claim cannot loop forever
        task = store.claim_task(refs, worker=name, now=1.0, lease_s=60.0)
        if task is None:
            break
        mine.append(task.number)
        time.sleep(0.005)  # a worker does something with its task before the next claim
    print(json.dumps(mine), flush=True)
elif mode == "open":
    print(json.dumps(len(store.repos())), flush=True)
elif mode == "hold":
    with store.steward_lock("octo/demo", "main") as held:
        print(json.dumps(held), flush=True)
        time.sleep(120)  # until the test kills this process
store.close()
"""


class Child:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        if not text:
            self.proc.wait(timeout=10)
            assert self.proc.stderr is not None
            raise AssertionError(f"child exited {self.proc.returncode}: {self.proc.stderr.read()}")
        return text.strip()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self) -> object:
        value = json.loads(self.line())
        assert self.proc.wait(timeout=10) == 0
        return value

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn() -> Iterator[list[Child]]:
    children: list[Child] = []
    yield children
    for child in children:
        child.kill()


def start(spawn: list[Child], count: int, *args: str) -> list[Child]:
    """Start ``count`` children, wait until every one has opened its Store, then release them."""
    children = [Child(args[0], args[1], f"p{i}", *args[2:]) for i in range(count)]
    spawn.extend(children)
    for child in children:
        assert child.line() == "ready"
    for child in children:
        child.go()
    return children


def test_two_processes_claim_every_task_exactly_once(store_url: str, spawn: list[Child]) -> None:
    setup = Store(store_url)
    try:
        for n in range(1, 41):
            setup.upsert_task(Task(repo=REPO, number=n, title=f"task {n}", created_at=float(n)))
    finally:
        setup.close()

    children = start(spawn, 2, "claim", store_url, "40")
    results = [child.result() for child in children]

    claimed = Counter(n for numbers in results for n in numbers)  # type: ignore[attr-defined]
    assert claimed == Counter(range(1, 41))  # every task exactly once
    assert all(len(numbers) > 0 for numbers in results), results  # type: ignore[arg-type]
    check = Store(store_url)
    try:
        tasks = check.list_tasks()
        assert {t.state for t in tasks} == {TaskState.RUNNING}
        owner = {n: f"p{i}" for i, numbers in enumerate(results) for n in numbers}  # type: ignore[attr-defined]
        assert all(t.worker == owner[t.number] and t.attempt == 1 for t in tasks)
    finally:
        check.close()


def test_processes_migrate_a_fresh_database_together(store_url: str, spawn: list[Child]) -> None:
    # The children open their Stores (and so migrate) as soon as they start, all at once.
    children = [Child("open", store_url, f"p{i}") for i in range(3)]
    spawn.extend(children)
    for child in children:
        assert child.line() == "ready"
        child.go()
    assert [child.result() for child in children] == [0, 0, 0]
    store = Store(store_url)
    try:
        store.upsert_task(Task(repo=REPO, number=1, title="after"))
        assert store.get_task(IssueRef(REPO, 1)) is not None
    finally:
        store.close()


def test_a_crashed_lock_holder_loses_its_lock(store_url: str, spawn: list[Child]) -> None:
    (holder,) = start(spawn, 1, "hold", store_url)
    assert json.loads(holder.line()) is True
    store = Store(store_url)
    try:
        with store.steward_lock(REPO, "main") as held:
            assert held is False
        holder.kill()
        killed_at = time.monotonic()
        if store.dialect == "sqlite":
            # The row outlives the process, but its owner was a process of this machine that is
            # gone: taken over at once, without waiting out its lease (a bot killed and
            # restarted stewards again at once).
            with store.steward_lock(REPO, "main") as held:
                assert held is True
        deadline = killed_at + 5.0
        while True:
            with store.steward_lock(REPO, "main") as held:
                if held:
                    break
            assert time.monotonic() < deadline, "lock of a killed holder was never freed"
            time.sleep(0.05)
    finally:
        store.close()
