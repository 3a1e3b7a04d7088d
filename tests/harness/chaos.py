"""The chaos sprint: the demo's pipeline (fakehub in this process, the bot and a runner as
processes) with every fault switched on, and the bot and the runner SIGKILLed and restarted.

One seed drives what can be seeded: the sprint's dependency graph and agent times, fakehub's
webhook faults (drops, duplicates, reordering) and REST faults (5xx, secondary rate limits with
``retry-after``), and the moments of the kills. :func:`chaos_seed` takes it from
``STONEFORGE_CHAOS_SEED`` or draws one; a failing run prints it, so it can be replayed (the
processes' timing is not seeded, so a replay reproduces the faults and the schedule, not every
interleaving).

The sprint (:func:`chaos_sprint`): two pairs of tasks that rewrite the same line of one file
each (the most urgent, so both of a pair run at once and the second to merge conflicts: the
steward's rebase and resolve jobs, the script agent keeping both sides, as it does for a resolve
prompt when the task's script has no ``resolve`` of its own), one task whose first CI
run fails (a flaky check: the steward re-runs it), and the rest each writing a file of its own,
some blocked by earlier ones (half by GitHub's issue dependencies, half by "Blocked by #N").
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.pipeline import Pipeline
from demo.sample import FULL, script_block
from tests.harness.invariants import HubRecord, closes_of, record_of
from tests.harness.kill import kill_bot, kill_runner_and_orphans
from tests.harness.waiting import hub_changes

SEED_ENV = "STONEFORGE_CHAOS_SEED"
PAIRS = 2  # pairs of tasks that rewrite the same line
PAIR_SLEEP_S = (1.5, 3.0)  # the first of a pair finishes first; the second is still at work


def chaos_seed() -> int:
    """``$STONEFORGE_CHAOS_SEED``, else a fresh one; printed either way."""
    text = os.environ.get(SEED_ENV, "").strip()
    seed = int(text) if text else random.SystemRandom().randrange(1, 2**31)
    print(f"chaos seed {seed} (replay: {SEED_ENV}={seed})", file=sys.stderr, flush=True)
    return seed


@dataclass(frozen=True)
class ChaosTask:
    index: int
    title: str
    script: dict[str, Any]
    native: tuple[int, ...] = ()  # blockers (indexes) linked as GitHub issue dependencies
    text: tuple[int, ...] = ()  # blockers (indexes) named "Blocked by #N" in the body
    kind: str = "plain"  # "pair", "flaky" or "plain"
    labels: tuple[str, ...] = ("agent-ready",)
    pair: tuple[int, int] | None = None  # a pair's (number, side): 0 for its "a", 1 for "b"

    @property
    def blockers(self) -> tuple[int, ...]:
        return self.native + self.text


def pair_path(pair: int) -> str:
    return f"shared/pair-{pair}.txt"


def pair_line(pair: int, side: int) -> str:
    return f"line 2 as task {'ab'[side]} of pair {pair} wrote it"


def chaos_sprint(rng: random.Random, size: int = 30) -> list[ChaosTask]:
    """The sprint, blockers before the tasks they block (see the module doc)."""
    tasks: list[ChaosTask] = []
    for pair in range(PAIRS):
        for side in (0, 1):
            text = f"pair {pair}\n{pair_line(pair, side)}\nend\n"
            script = {"sleep": PAIR_SLEEP_S[side],
                      "edits": [{"path": pair_path(pair), "write": text}],
                      "summary": f"Rewrote line 2 of {pair_path(pair)}"}  # fmt: skip
            title = f"Rewrite line 2 of pair {pair} ({'ab'[side]})"
            # The most urgent priority: both of a pair start in the first wave, together.
            labels = ("agent-ready", "priority: p0")
            tasks.append(
                ChaosTask(len(tasks), title, script, kind="pair", labels=labels, pair=(pair, side))
            )
    flaky = {"sleep": 1.0, "edits": [{"path": "flaky.txt", "write": "flaky\n"}],
             "summary": "Added flaky.txt"}  # fmt: skip
    tasks.append(
        ChaosTask(len(tasks), "Add the file whose first CI run fails", flaky, kind="flaky")
    )
    while len(tasks) < size:
        i = len(tasks)
        path = f"tasks/t{i:02d}.txt"
        edit = {"path": path, "write": f"task {i}\n"}
        script = {"sleep": round(rng.uniform(0.3, 1.2), 2), "edits": [edit], "summary": path}
        blockers = sorted(rng.sample(range(i), k=rng.choice((0, 0, 0, 1, 1, 2))))
        native = tuple(b for b in blockers if rng.random() < 0.5)
        text = tuple(b for b in blockers if b not in native)
        tasks.append(ChaosTask(i, f"Add {path}", script, native, text, kind="plain"))
    return tasks


def chaos_repo(markers: Path) -> tuple[dict[str, str], list[str]]:
    """The repository's files and its CI command: red while a file holds a conflict marker;
    the first run that sees ``flaky.txt`` fails (a flake), every later one passes."""
    files = {pair_path(p): f"pair {p}\nline 2 as it was\nend\n" for p in range(PAIRS)}
    files["README.md"] = "chaos\n"
    files[".github/stoneforge.yml"] = "version: 1\nconcurrency:\n  per_repo: 100\n"
    markers.mkdir(parents=True, exist_ok=True)
    flaked = markers / "flaked"
    code = (
        "import pathlib, sys\n"
        f"flaked = pathlib.Path({str(flaked)!r})\n"
        "if pathlib.Path('flaky.txt').exists() and not flaked.exists():\n"
        "    flaked.write_text('1'); print('a flaky failure'); sys.exit(1)\n"
        "bad = [p.name for p in pathlib.Path('shared').glob('*') if '<<<<<<<' in p.read_text()]\n"
        "print('conflict markers in', bad) if bad else None\n"
        "sys.exit(1 if bad else 0)\n"
    )
    return files, [sys.executable, "-I", "-S", "-c", code]


@dataclass
class Kill:
    at_s: float  # seconds after the sprint was filed
    target: str  # "bot" or "runner"
    pause_s: float  # how long it stays down


def kill_schedule(rng: random.Random, kills: int = 3, window_s: float = 45.0) -> list[Kill]:
    """``kills`` SIGKILLs each of the bot and the runner at random moments in the first
    ``window_s`` seconds, each process at least 5 s apart from its own previous kill."""
    out: list[Kill] = []
    for target in ("bot", "runner"):
        at = 0.0
        for k in range(kills):
            slot = (window_s - 3.0) / kills
            at = max(at + 5.0, 3.0 + slot * k + rng.uniform(0, slot))
            out.append(Kill(round(at, 2), target, round(rng.uniform(0.2, 2.0), 2)))
    return sorted(out, key=lambda k: k.at_s)


class RetryingTransport(httpx.HTTPTransport):
    """The maintainer's transport: fakehub's REST faults hit people too, and a person (or their
    tool) tries again after a 5xx, or after a rate limit's ``retry-after``."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(30):
            resp = super().handle_request(request)
            limited = resp.status_code in (403, 429) and "retry-after" in resp.headers
            if resp.status_code not in (500, 502, 503) and not limited:
                return resp
            resp.read()
            resp.close()
            time.sleep(min(float(resp.headers.get("retry-after", "0.1")), 2.0))
        return resp


def retrying_client(base_url: str, token: str) -> httpx.Client:
    headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
    return httpx.Client(
        base_url=base_url, headers=headers, timeout=30, transport=RetryingTransport()
    )


@dataclass
class ChaosRun:
    """One chaos sprint on ``pipe``: file it, kill on schedule, wait until it merged."""

    pipe: Pipeline
    tasks: list[ChaosTask]
    schedule: list[Kill]
    numbers: dict[int, int] = field(default_factory=dict)  # task index -> issue number
    done: list[Kill] = field(default_factory=list)
    orphans: int = 0

    @property
    def blockers(self) -> dict[int, tuple[int, ...]]:
        """issue -> its blockers' issues, for every issue of the sprint."""
        n = self.numbers
        return {n[t.index]: tuple(n[b] for b in t.blockers) for t in self.tasks}

    def file(self) -> None:
        """File the sprint as the maintainer: issues (text blockers in the body), GitHub's
        issue dependencies, then the trigger label on each."""
        with retrying_client(self.pipe.hub.api_url, self.pipe.maintainer_token) as api:
            ids: dict[int, int] = {}
            for task in self.tasks:
                named = "".join(f"Blocked by #{self.numbers[b]}\n" for b in task.text)
                body = f"{task.title}.\n\n{named}\n{script_block(task.script)}\n"
                resp = api.post(f"/repos/{FULL}/issues", json={"title": task.title, "body": body})
                resp.raise_for_status()
                self.numbers[task.index], ids[task.index] = resp.json()["number"], resp.json()["id"]
            for task in self.tasks:
                for blocker in task.native:
                    path = (
                        f"/repos/{FULL}/issues/{self.numbers[task.index]}/dependencies/blocked_by"
                    )
                    api.post(path, json={"issue_id": ids[blocker]}).raise_for_status()
            for task in self.tasks:
                path = f"/repos/{FULL}/issues/{self.numbers[task.index]}/labels"
                api.post(path, json={"labels": list(task.labels)}).raise_for_status()

    def resolved(self) -> set[int]:
        """Issues whose conflicts a resolve job resolved and pushed (the runners' own logs)."""
        found = set()
        for log in self.pipe.work.glob("runner*.log"):
            for match in re.finditer(r"resolved job=\S+#(\d+)@", log.read_text(errors="replace")):
                found.add(int(match.group(1)))
        return found

    def record(self) -> HubRecord:
        return record_of(self.pipe.hub, FULL)

    def merged(self) -> bool:
        """Every issue of the sprint closed by a merged pull request, by fakehub's record."""
        closes = closes_of(self.pipe.hub, FULL)
        issues = {closes.get(e["pr"]) for e in self.pipe.hub.events("merge")}
        return set(self.numbers.values()) <= issues

    def run(self, timeout_s: float) -> None:
        """Kill and restart on schedule until the sprint merged and every kill happened."""
        started = time.monotonic()
        pending = list(self.schedule)
        down: list[tuple[float, Kill]] = []  # (restart at, kill)
        last_view = 0.0
        changes = hub_changes(self.pipe.hub)
        while True:
            now = time.monotonic() - started
            while pending and pending[0].at_s <= now:
                kill = pending.pop(0)
                self._kill(kill)
                down.append((now + kill.pause_s, kill))
            for entry in [d for d in down if d[0] <= now]:
                down.remove(entry)
                self._restart(entry[1])
            if not pending and not down and self.merged():
                self._settle()
                return
            if now - last_view > 2.0:
                last_view = now
                self._fail_fast()
            if now > timeout_s:
                raise AssertionError(
                    f"the sprint did not merge in {timeout_s:g} s: {self.status()}"
                )
            changes.wait(changes.count(), 0.2)

    def _settle(self, quiet_s: float = 2.0, limit_s: float = 10.0) -> None:
        """Give late effects (a second pull request, a second merge) time to show in the record:
        until fakehub's log was quiet for ``quiet_s``, at most ``limit_s``."""
        changes = hub_changes(self.pipe.hub)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            seen = changes.count()
            changes.wait(seen, quiet_s)
            if changes.count() == seen:
                return

    def _kill(self, kill: Kill) -> None:
        n = sum(1 for k in self.done if k.target == kill.target) + 1
        print(f"chaos: SIGKILL {kill.target} #{n} at {kill.at_s:.1f} s", file=sys.stderr)
        if kill.target == "bot":
            kill_bot(self.pipe)
        else:
            self.orphans += kill_runner_and_orphans(self.pipe)
        self.done.append(kill)

    def _restart(self, kill: Kill) -> None:
        n = sum(1 for k in self.done if k.target == kill.target)
        if kill.target == "bot":
            self.pipe.restart_bot(f"bot-{n + 1}")
        else:
            self.pipe.restart_runner(f"runner-{n + 1}")

    def _fail_fast(self) -> None:
        """Stop at once on a failed task or a process that exited by itself (not killed)."""
        for proc, name in zip(self.pipe.procs, self.pipe.proc_names, strict=False):
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                raise AssertionError(f"the {name} exited by itself ({proc.returncode})")
        failed = {t["issue"]: t["detail"] for t in self.pipe.tasks() if t["state"] == "failed"}
        if failed:
            raise AssertionError(f"tasks failed: {failed}\n{self.status()}")

    def status(self) -> str:
        tasks = {t["issue"]: (t["state"], t["attempt"]) for t in self.pipe.tasks()}
        return json.dumps({"kills": len(self.done), "tasks": tasks}, default=str)
