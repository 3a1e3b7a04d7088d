"""GitHub Actions routes: ``workflow_dispatch``, and re-running a workflow run's failed jobs.

fakehub runs no workflows. A dispatch is validated as GitHub does (the workflow file must exist
on ``ref`` and declare ``on: workflow_dispatch``; inputs must be declared and the required ones
present), recorded in the event log as ``{"type": "workflow_dispatch", "repo", "workflow",
"ref", "inputs"}``, and handed to listeners registered with :func:`on_workflow_dispatch`, so a
test (or the demo) can play the part of the Actions runner.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import yaml

from fakehub.auth import ApiError, not_found
from fakehub.hub import Hub
from fakehub.rest.context import Ctx, Result

log = logging.getLogger(__name__)

MAX_INPUTS = 25  # raised from 10 on 2025-12-04
MAX_INPUT_CHARS = 65_535
Listener = Callable[[dict[str, Any]], None]

_listeners: weakref.WeakKeyDictionary[Hub, list[Listener]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def on_workflow_dispatch(hub: Hub, callback: Listener) -> Callable[[], None]:
    """Call ``callback(event)`` after each accepted dispatch on ``hub``; returns an unsubscriber.

    The callback runs on fakehub's request thread: it must return quickly (start a thread or a
    process for real work).
    """
    with _lock:
        _listeners.setdefault(hub, []).append(callback)

    def remove() -> None:
        with _lock:
            items = _listeners.get(hub, [])
            if callback in items:
                items.remove(callback)
            if not items:
                _listeners.pop(hub, None)

    return remove


def create_workflow_dispatch(ctx: Ctx) -> Result:
    repo = ctx.repo("actions", "write")
    workflow = ctx.params["workflow_id"]
    if not workflow.endswith((".yml", ".yaml")) or "/" in workflow:
        raise not_found()  # numeric workflow ids are not modelled; only file names
    ref = ctx.field("ref", str, required=True)
    inputs = ctx.field("inputs", dict) or {}
    branch = ref.removeprefix("refs/heads/")
    if ctx.hub.store.ref_sha(repo.full_name, branch) is None:
        raise ApiError(422, f"No ref found for: {ref}")
    path = f".github/workflows/{workflow}"
    raw = ctx.hub.store.read_file(repo.full_name, branch, path)
    if raw is None:
        raise ApiError(422, f"Workflow does not exist on ref {ref}: {path}")
    declared = _dispatch_inputs(raw)
    if declared is None:
        raise ApiError(422, "Workflow does not have 'workflow_dispatch' trigger")
    _check_inputs(inputs, declared)
    event = ctx.state.record(
        "workflow_dispatch",
        repo=repo.full_name,
        workflow=workflow,
        ref=ref,
        inputs={k: _as_text(v) for k, v in inputs.items()},
    )
    with _lock:
        listeners = list(_listeners.get(ctx.hub, ()))
    for listener in listeners:
        try:
            listener(dict(event))
        except Exception:  # a broken listener must not turn the dispatch into a 500
            log.exception("workflow_dispatch listener failed")
    return 204, None


def _dispatch_inputs(raw: bytes) -> dict[str, dict[str, Any]] | None:
    """The declared ``workflow_dispatch`` inputs, or ``None`` if the workflow lacks the trigger."""
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = doc.get("on", doc.get(True))
    if on == "workflow_dispatch" or (isinstance(on, list) and "workflow_dispatch" in on):
        return {}
    if not isinstance(on, dict) or "workflow_dispatch" not in on:
        return None
    spec = on["workflow_dispatch"] or {}
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    return {str(k): (v or {}) for k, v in (inputs or {}).items()}


def _check_inputs(inputs: dict[str, Any], declared: dict[str, dict[str, Any]]) -> None:
    if len(inputs) > MAX_INPUTS:
        raise ApiError(
            422, f"you may only define up to {MAX_INPUTS} `inputs` for a `workflow_dispatch` event"
        )
    unexpected = sorted(set(inputs) - set(declared))
    if unexpected:
        raise ApiError(422, f"Unexpected inputs provided: {unexpected}")
    for name, value in inputs.items():
        if not isinstance(value, str | int | float | bool):
            raise ApiError(422, f"Provided value for input '{name}' is not a string")
    for name, spec in declared.items():
        if spec.get("required") and name not in inputs and spec.get("default") is None:
            raise ApiError(422, f"Required input '{name}' not provided")
    if sum(len(_as_text(v)) for v in inputs.values()) > MAX_INPUT_CHARS:
        raise ApiError(422, "inputs are too large")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rerun_failed_jobs(ctx: Ctx) -> Result:
    """``POST .../actions/runs/{run_id}/rerun-failed-jobs``. fakehub has no workflow runs: a
    run is the check runs of the ``github-actions`` App whose details URL points at
    ``.../actions/runs/{run_id}/``; each failed one (newest per name) is run again
    (:meth:`fakehub.hub.Hub.rerun_actions_job`) and recorded as ``rerun_failed_jobs``."""
    repo = ctx.repo("actions", "write")
    run_id = ctx.int_param("run_id")
    marker = f"/actions/runs/{run_id}/"
    with ctx.state.lock:
        jobs = [
            r
            for r in ctx.state.check_runs.values()
            if r.repo is repo and r.app.slug == "github-actions" and marker in (r.details_url or "")
        ]
    if not jobs:
        raise not_found()
    newest: dict[str, Any] = {}
    for job in sorted(jobs, key=lambda r: r.id):
        newest[job.name] = job
    failed = [
        r
        for r in newest.values()
        if r.status == "completed" and r.conclusion not in ("success", "neutral", "skipped")
    ]
    ctx.state.record(
        "rerun_failed_jobs", repo=repo.full_name, run_id=run_id, jobs=[r.name for r in failed]
    )
    for job in failed:
        ctx.hub.rerun_actions_job(job, run_id)
    return 201, {}


_R = "/repos/{owner}/{repo}"
TABLE: list[tuple[str, list[str], Any]] = [
    (_R + "/actions/workflows/{workflow_id}/dispatches", ["POST"], create_workflow_dispatch),
    (_R + "/actions/runs/{run_id}/rerun-failed-jobs", ["POST"], rerun_failed_jobs),
]
