"""What the store hands out (frozen records) and how tasks map to rows and back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from bot.core.lifecycle import reason_from_json, reason_to_json
from bot.core.model import IssueRef, Task, TaskState
from bot.store.tables import TASK_FIELDS, tasks


@dataclass(frozen=True)
class RunnerRecord:
    runner_id: str
    name: str
    labels: tuple[str, ...]
    capacity: int
    last_seen: float | None


@dataclass(frozen=True)
class PlanTaskRecord:
    """One task of a plan and the issue filed for it (``number`` and ``issue_id`` are None
    until it is filed; ``linked``: its sub-issue and "blocked by" links are all on GitHub)."""

    plan_id: str
    idx: int
    title: str
    number: int | None
    issue_id: int | None
    linked: bool
    closed: bool


@dataclass(frozen=True)
class ClaimedJob:
    """A task a claim just moved to running, with the numbers of the job it becomes."""

    task: Task
    dispatch: int  # the task's dispatch count, this one included: the job id's number
    review_round: int  # review rounds so far, this one included (0: no review sent it back)


@dataclass(frozen=True)
class JobOwner:
    """Who holds a task's current job: checked on every heartbeat, transcript and result."""

    ref: IssueRef
    state: TaskState
    dispatch: int
    owner: str | None  # the claiming runner's identity (``bot.runner_api``)
    secret_hash: str | None  # SHA-256 (hex) of the claim secret only that runner received


@dataclass(frozen=True)
class TranscriptRecord:
    id: str
    repo: str
    number: int
    attempt: int
    runner: str | None
    agent: str | None
    created_at: float
    size: int  # bytes of text, before compression


@dataclass(frozen=True)
class NewDelivery:
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    payload: bytes
    received_at: float
    processed: bool = False


@dataclass(frozen=True)
class Delivery:
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    payload: bytes
    received_at: float
    processed_at: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class RepoRecord:
    """A repository the App is installed on, with its last read configuration."""

    repo: str
    installation_id: int
    default_branch: str
    labels_ready: bool = False
    config_text: str | None = None  # last VALID config file text
    config_sha: str | None = None  # blob sha of ``config_text``
    config_error: str | None = None  # why the newest config file was rejected, if it was


def row_to_delivery(row: RowMapping) -> Delivery:
    return Delivery(
        guid=row["guid"],
        event=row["event"],
        action=row["action"],
        installation_id=row["installation_id"],
        payload=bytes(row["payload"]),
        received_at=row["received_at"],
        processed_at=row["processed_at"],
        error=row["error"],
    )


def task_key(ref: IssueRef) -> sa.ColumnElement[bool]:
    return sa.and_(tasks.c.repo == ref.repo, tasks.c.number == ref.number)


def task_to_row(task: Task) -> dict[str, Any]:
    row = {name: getattr(task, name) for name in TASK_FIELDS}
    row["state"] = TaskState(task.state).value
    row["blocked_by"] = json.dumps([str(ref) for ref in task.blocked_by])
    row["runs_on"] = json.dumps(list(task.runs_on))
    row["files"] = json.dumps(list(task.files))
    row["rate_limits"] = json.dumps([list(item) for item in task.rate_limits])
    row["reason"] = reason_to_json(task.reason)
    return row


def row_to_task(row: RowMapping) -> Task:
    values = {name: row[name] for name in TASK_FIELDS}
    values["state"] = TaskState(row["state"])
    values["blocked_by"] = tuple(IssueRef.parse(text) for text in json.loads(row["blocked_by"]))
    values["runs_on"] = tuple(json.loads(row["runs_on"] or "[]"))
    values["files"] = tuple(json.loads(row["files"] or "[]"))
    values["paused"] = bool(row["paused"])
    values["rate_limits"] = tuple(
        (str(agent), float(until)) for agent, until in json.loads(row["rate_limits"] or "[]")
    )
    values["reason"] = reason_from_json(row["reason"])
    return Task(**values)
