"""The director's plan: its shape, its validation, and how it reads on GitHub. Pure.

A plan is the JSON a planning agent writes (``schema/plan.schema.json``, generated from
``Plan``): the shared ``notes`` every task of the plan gets (the director's decisions), and the
``tasks``, each with a title, body, acceptance criteria, blockers by index, a priority, the files
it expects to touch and a size. ``validate_plan`` turns any JSON value into a ``Plan`` or a list
of errors in words (never raises): the schema, at most ``MAX_TASKS`` tasks, every blocker index
valid and not the task itself, titles unique, and no cycle.

On GitHub a plan is a set of issues, each a sub-issue of the epic, each carrying a hidden marker
(``task_marker``) with the plan's id and the task's index, so filing is idempotent; and one plan
comment on the epic (``plan_comment_marker``) with a checklist and a Mermaid graph
(``render_mermaid``) coloured by state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: GitHub allows 100 sub-issues per parent.
MAX_TASKS = 100
#: GitHub allows about 50 dependencies per relationship type on one issue.
MAX_BLOCKERS = 50
TITLE_MAX = 200


class TaskSize(StrEnum):
    XS = "xs"
    S = "s"
    M = "m"
    L = "l"
    XL = "xl"


Text = Annotated[str, Field(max_length=20_000)]


class PlannedTask(BaseModel):
    """One task of a plan: it becomes one issue (a sub-issue of the epic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, Field(min_length=1, max_length=TITLE_MAX)]
    body: Text = ""
    acceptance_criteria: tuple[Annotated[str, Field(max_length=2_000)], ...] = Field(
        (), max_length=50
    )
    #: indexes (0-based) of the tasks of this plan that must merge first
    blockers: tuple[Annotated[int, Field(ge=0)], ...] = Field((), max_length=MAX_BLOCKERS)
    #: 0 most urgent .. 4
    priority: Annotated[int, Field(ge=0, le=4)] = 2
    #: repository paths the task expects to touch (file-aware scheduling)
    files: tuple[Annotated[str, Field(min_length=1, max_length=500)], ...] = Field(
        (), max_length=200
    )
    size: TaskSize = TaskSize.M


class Plan(BaseModel):
    """What a planning agent writes: shared notes and the tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: one paragraph: what the plan does, for the epic's plan comment
    summary: Annotated[str, Field(max_length=5_000)] = ""
    #: the director's decisions every task's agent gets (interfaces, names, conventions)
    notes: tuple[Annotated[str, Field(max_length=5_000)], ...] = Field((), max_length=50)
    tasks: tuple[PlannedTask, ...] = Field(min_length=1)


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of a plan, as ``schema/plan.schema.json`` holds it."""
    schema = Plan.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stoneforge.dev/schema/plan.schema.json",
        "title": "Stoneforge plan",
        "description": (
            "What a planning agent writes: shared notes and at most "
            f"{MAX_TASKS} tasks, blockers by 0-based index. Generated from bot/core/plan.py."
        ),
        **schema,
    }


def validate_plan(raw: object) -> Plan | list[str]:
    """``raw`` (parsed JSON, or its text) as a ``Plan``, or every error found, in words."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            return [f"the plan is not JSON: {exc}"]
    if isinstance(raw, Mapping) and isinstance(raw.get("tasks"), list):
        if len(raw["tasks"]) > MAX_TASKS:
            return [f"the plan has {len(raw['tasks'])} tasks; at most {MAX_TASKS} are allowed"]
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as exc:
        return [_error_text(err) for err in exc.errors()]
    errors = structure_errors(plan)
    return errors or plan


def _error_text(err: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in err.get("loc", ())) or "(the plan)"
    return f"{where}: {err.get('msg', 'invalid')}"


def structure_errors(plan: Plan) -> list[str]:
    """What the schema cannot say: blocker indexes, unique titles, no cycle."""
    errors: list[str] = []
    count = len(plan.tasks)
    seen: dict[str, int] = {}
    for index, task in enumerate(plan.tasks):
        for blocker in task.blockers:
            if blocker >= count:
                errors.append(
                    f"tasks.{index}.blockers: index {blocker} does not exist "
                    f"(the plan has tasks 0..{count - 1})"
                )
            elif blocker == index:
                errors.append(f"tasks.{index}.blockers: a task cannot block itself")
        key = " ".join(task.title.casefold().split())
        if key in seen:
            errors.append(
                f"tasks.{index}.title: {task.title!r} repeats the title of task {seen[key]}"
            )
        else:
            seen[key] = index
    if not errors:
        for cycle in find_cycles(plan):
            path = " -> ".join(str(i) for i in (*cycle, cycle[0]))
            errors.append(f"dependency cycle: tasks {path} block each other")
    return errors


def find_cycles(plan: Plan) -> list[tuple[int, ...]]:
    """Each cycle of blockers once, as task indexes (valid indexes assumed)."""
    edges = {i: sorted(set(t.blockers)) for i, t in enumerate(plan.tasks)}
    color = dict.fromkeys(edges, 0)  # 0 new, 1 on the stack, 2 done
    cycles: list[tuple[int, ...]] = []
    seen: set[frozenset[int]] = set()
    for root in edges:
        if color[root]:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]
        path: list[int] = []
        while stack:
            node, pos = stack.pop()
            if pos == 0:
                color[node] = 1
                path.append(node)
            nexts = edges[node]
            if pos < len(nexts):
                stack.append((node, pos + 1))
                nxt = nexts[pos]
                if color[nxt] == 0:
                    stack.append((nxt, 0))
                elif color[nxt] == 1:
                    cycle = tuple(path[path.index(nxt) :])
                    if frozenset(cycle) not in seen:
                        seen.add(frozenset(cycle))
                        cycles.append(cycle)
            else:
                color[node] = 2
                path.pop()
    return cycles


def levels(plan: Plan) -> list[int]:
    """Each task's depth: 0 with no blockers, else one more than its deepest blocker (an
    acyclic plan assumed)."""
    depth: dict[int, int] = {}

    def walk(i: int) -> int:
        stack = [i]
        while stack:
            node = stack[-1]
            pending = [b for b in plan.tasks[node].blockers if b not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[node] = 1 + max((depth[b] for b in plan.tasks[node].blockers), default=-1)
        return depth[i]

    return [walk(i) for i in range(len(plan.tasks))]


# --- on GitHub ------------------------------------------------------------------------------

_TASK_MARKER_RE = re.compile(
    r"<!--\s*stoneforge:plan-task\s+plan=([A-Za-z0-9_-]+)\s+index=(\d+)\s*-->"
)


#: the label a filed plan's issues carry until ``/stoneforge approve``: never dispatched
DRAFT_LABEL = "stoneforge:draft"


def task_marker(plan_id: str, index: int) -> str:
    """The hidden line in a filed task's body: finding it makes filing idempotent."""
    return f"<!-- stoneforge:plan-task plan={plan_id} index={index} -->"


def parse_task_marker(body: str | None) -> tuple[str, int] | None:
    """``(plan_id, index)`` of a filed task's body, or None."""
    match = _TASK_MARKER_RE.search(body or "")
    return None if match is None else (match.group(1), int(match.group(2)))


def plan_comment_marker(plan_id: str) -> str:
    return f"<!-- stoneforge:plan {plan_id} -->"


class NodeState(StrEnum):
    """How a task of a plan shows in the plan comment's graph."""

    DRAFT = "draft"
    QUEUED = "queued"
    RUNNING = "running"
    IN_REVIEW = "in_review"
    MERGED = "merged"
    FAILED = "failed"
    CANCELLED = "cancelled"


_NODE_STYLE = {
    NodeState.DRAFT: "fill:#f6f8fa,stroke:#8c959f,color:#24292f",
    NodeState.QUEUED: "fill:#ddf4ff,stroke:#54aeff,color:#0a3069",
    NodeState.RUNNING: "fill:#fff8c5,stroke:#d4a72c,color:#4d2d00",
    NodeState.IN_REVIEW: "fill:#fbefff,stroke:#c297ff,color:#3e1f79",
    NodeState.MERGED: "fill:#dafbe1,stroke:#4ac26b,color:#044f1e",
    NodeState.FAILED: "fill:#ffebe9,stroke:#ff8182,color:#82071e",
    NodeState.CANCELLED: "fill:#eaeef2,stroke:#afb8c1,color:#57606a",
}


def _mermaid_label(text: str) -> str:
    # Mermaid quoted labels end at '"'; '#...;' is an entity code; keep labels one short line.
    clean = " ".join(text.split()).replace('"', "'").replace(";", ",")
    clean = re.sub(r"[<>`]", "", clean)
    return clean if len(clean) <= 60 else clean[:57].rstrip() + "..."


def render_mermaid(
    plan: Plan,
    numbers: Sequence[int | None] = (),
    states: Sequence[NodeState] = (),
) -> str:
    """The plan's dependency graph as a Mermaid flowchart (blocker --> blocked), each node
    labelled with its issue number (when filed) and title and classed by its state."""
    lines = ["flowchart TD"]
    for i, task in enumerate(plan.tasks):
        number = numbers[i] if i < len(numbers) else None
        label = _mermaid_label(f"{'#' + str(number) + ' ' if number else ''}{task.title}")
        state = states[i] if i < len(states) else NodeState.DRAFT
        lines.append(f'  t{i}["{label}"]:::{state.value}')
    for i, task in enumerate(plan.tasks):
        for blocker in sorted(set(task.blockers)):
            lines.append(f"  t{blocker} --> t{i}")
    used = {states[i] if i < len(states) else NodeState.DRAFT for i in range(len(plan.tasks))}
    for state in NodeState:
        if state in used:
            lines.append(f"  classDef {state.value} {_NODE_STYLE[state]}")
    return "\n".join(lines)
