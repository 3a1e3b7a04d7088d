"""What ``stoneforge demo`` shows and writes: the live table, one line per event, the review
the maintainer makes, and the JSON report. Reads the pipeline through the bot's ``/api/tasks``
and fakehub's own event log; acts only through fakehub's REST API, as a person would.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import httpx
from rich.table import Table

from demo.sample import FULL, SprintIssue


class Events(Protocol):
    def events(self, type: str | None = None) -> list[dict[str, Any]]: ...


class Pipe(Protocol):
    """What the view reads of the running pipeline (``demo.pipeline.Pipeline``), so that the
    view does not import the demo it shows."""

    @property
    def workers(self) -> int: ...
    @property
    def hub(self) -> Events: ...
    @property
    def sprint(self) -> tuple[SprintIssue, ...]: ...
    @property
    def numbers(self) -> dict[str, int]: ...
    def tasks(self) -> list[dict[str, Any]]: ...
    def api(self) -> AbstractContextManager[httpx.Client]: ...


STATE_STYLE = {
    "queued": "dim",
    "running": "yellow",
    "in_review": "cyan",
    "merged": "green",
    "failed": "red",
    "cancelled": "red",
}


def status_table(pipe: Pipe, tasks: list[dict[str, Any]], started: float) -> Table:
    checks = checks_by_sha(pipe)
    table = Table(
        title=f"Stoneforge demo · {FULL} · {pipe.workers} workers · {time.time() - started:5.1f} s"
    )
    for col in ("issue", "title", "blocked by", "state", "worker", "PR", "CI", "merge"):
        table.add_column(col)
    for task in sorted(tasks, key=lambda t: t["issue"]):
        state = task["state"]
        if state == "queued":
            state = "ready" if task.get("ready") else "waiting"
        style = STATE_STYLE.get(task["state"], "")
        table.add_row(
            f"#{task['issue']}",
            task["title"][:38],
            " ".join("#" + b.rsplit("#", 1)[1] for b in task["blocked_by"]) or "-",
            f"[{style}]{state}[/]",
            (task.get("worker") or "-").rsplit("/", 1)[-1]
            if task["state"] in ("running",)
            else (task.get("worker") or "-").rsplit("/", 1)[-1],
            f"#{task['pr']}" if task.get("pr") else "-",
            checks.get(task.get("head_sha") or "", "-")
            if task["state"] == "in_review"
            else ("passed" if task["state"] == "merged" else "-"),
            (task.get("merge_sha") or "")[:7] or "-",
        )
    return table


REVIEW_VERBS = {
    "APPROVED": "[green]approved[/]",
    "CHANGES_REQUESTED": "[magenta]requested changes on[/]",
}


class Narrator:
    """One line per thing that happened: dispatches, pull requests, checks, updates, merges."""

    def __init__(self, pipe: Pipe, started: float) -> None:
        self.pipe = pipe
        self.started = started
        self.seen: dict[int, tuple[str, int, float | None]] = {}
        self.events_seen = 0
        self.pr_of_sha: dict[str, int] = {}
        self.prs_seen: set[int] = set()

    def lines(self, tasks: list[dict[str, Any]]) -> list[str]:
        out: list[str] = []
        stamp = f"[dim]{time.time() - self.started:6.1f}s[/]"
        by_pr = {t["pr"]: t for t in tasks if t.get("pr")}
        for task in sorted(tasks, key=lambda t: t["issue"]):
            key = (task["state"], int(task.get("attempt") or 0), task.get("dispatched_at"))
            if self.seen.get(task["issue"]) == key:
                continue
            if task["state"] == "in_review" and not task.get("pr"):
                continue  # its pull request is being opened: said once it has a number
            self.seen[task["issue"]] = key
            name = f"#{task['issue']} {task['title']}"
            worker = (task.get("worker") or "").rsplit("/", 1)[-1]
            if task["state"] == "running":
                why = f": {task['detail']}" if task.get("pr") and task.get("detail") else ""
                if task.get("pr"):
                    self.prs_seen.add(task["pr"])  # a steward's round: its pull request exists
                out.append(f"{stamp} [yellow]dispatched[/] {name} -> worker {worker}{why}")
            elif task["state"] == "in_review":
                agent = float(task.get("agent_seconds") or 0)
                verb = "updated" if task["pr"] in self.prs_seen else "opened"
                self.prs_seen.add(task["pr"])
                out.append(
                    f"{stamp} [cyan]pull request #{task['pr']}[/] {verb} for {name} "
                    f"(agent {agent:.1f} s on {worker})"
                )
            elif task["state"] == "queued" and task.get("pr"):
                # The steward sent it back: a review, a conflict to rebase or resolve, red checks.
                out.append(f"{stamp} [magenta]steward[/] {name}: {task.get('detail') or ''}")
            elif task["state"] in ("failed", "cancelled"):
                out.append(f"{stamp} [red]{task['state']}[/] {name}: {task.get('detail') or ''}")
        events = self.pipe.hub.events()
        for event in events[self.events_seen :]:
            kind = event["type"]
            if kind == "branch_updated":
                self.pr_of_sha[event["head_sha"]] = event["pr"]
            if kind == "check_completed" and event["name"] != "stoneforge":  # (the steward's)
                pr = self.pr_of_sha.get(event["sha"]) or next(
                    (p for p, t in by_pr.items() if t.get("head_sha") == event["sha"]), None
                )
                style = "green" if event["conclusion"] == "success" else "red"
                where = f"PR #{pr}" if pr else event["sha"][:7]
                out.append(
                    f"{stamp} check [{style}]{event['name']} {event['conclusion']}[/] on {where}"
                )
            elif kind == "branch_updated":
                out.append(
                    f"{stamp} PR #{event['pr']} was behind main: branch updated, checks rerun"
                )
            elif kind == "review_submitted" and event["state"] != "COMMENTED":
                self.prs_seen.add(event["pr"])  # its next appearance is a revision
                verb = REVIEW_VERBS.get(event["state"], event["state"])
                out.append(f"{stamp} {event['by']} {verb} PR #{event['pr']}")
            elif kind == "merge":
                task = by_pr.get(event["pr"], {})
                out.append(
                    f"{stamp} [green]merged[/] PR #{event['pr']} ({event['method']}) "
                    f"{event['merge_sha'][:7]} closes #{task.get('issue', '?')}"
                )
        self.events_seen = len(events)
        return out


class Reviewer:
    """The demo's maintainer reviewing: on the first pull request of each sprint issue that
    has a ``review``, request changes with it at once (before its checks finish, so the steward
    cannot merge it first); approve once the steward reports it waits for a re-review, i.e.
    the agent has pushed the change asked for."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.requested: dict[int, int] = {}  # issue -> pull request reviewed
        self.approved: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-reviewer", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        if any(item.review for item in self.pipe.sprint):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        wanted = {self.pipe.numbers[i.key]: i.review or "" for i in self.pipe.sprint if i.review}
        last_tasks = 0.0
        try:
            while not self._stop.wait(0.05) and len(self.approved) < len(wanted):
                self._request_changes(wanted)
                if time.monotonic() - last_tasks >= 0.5:
                    last_tasks = time.monotonic()
                    self._approve()
        except Exception as exc:  # noqa: BLE001 - reported by the demo, never a silent thread
            self.error = f"the demo reviewer failed: {type(exc).__name__}: {exc}"

    def _request_changes(self, wanted: dict[int, str]) -> None:
        for event in self.pipe.hub.events("pr_opened"):
            for number, body in wanted.items():
                branch = str(event.get("head") or "")
                if number not in self.requested and branch.startswith(f"stoneforge/{number}-"):
                    self._review(event["pr"], "REQUEST_CHANGES", body)
                    self.requested[number] = event["pr"]

    def _approve(self) -> None:
        for task in self.pipe.tasks():
            number = task["issue"]
            if (
                number in self.requested
                and number not in self.approved
                and task["state"] == "in_review"
                and "waiting for a re-review" in (task.get("detail") or "")
            ):
                self._review(self.requested[number], "APPROVE", "Thanks, that is what I meant.")
                self.approved.add(number)

    def _review(self, pr: int, event: str, body: str) -> None:
        with self.pipe.api() as api:
            resp = api.post(
                f"/repos/{FULL}/pulls/{pr}/reviews", json={"event": event, "body": body}
            )
            resp.raise_for_status()


def checks_by_sha(pipe: Pipe) -> dict[str, str]:
    out: dict[str, str] = {}
    for event in pipe.hub.events("check_completed"):
        out[event["sha"]] = event["conclusion"]
    return out


def write_report(
    path: Path,
    pipe: Pipe,
    tasks: list[dict[str, Any]],
    makespan: float,
    serial: float,
    workers: int,
) -> None:
    rows = []
    for t in sorted(tasks, key=lambda t: t["issue"]):
        rows.append(
            {
                "issue": t["issue"],
                "title": t["title"],
                "blocked_by": [int(b.rsplit("#", 1)[1]) for b in t["blocked_by"]],
                "dispatched_at": t.get("dispatched_at"),
                "agent_seconds": t.get("agent_seconds"),
                "pr": t.get("pr"),
                "merged_at": t.get("merged_at"),
                "merge_sha": t.get("merge_sha"),
            }
        )
    data = {
        "tasks": rows,
        "makespan_s": round(makespan, 3),
        "serial_s": round(serial, 3),
        "workers": workers,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
