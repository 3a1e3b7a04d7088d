"""``python -m action``: run ONE Stoneforge job on a GitHub Actions runner.

Claim the job the bot dispatched with its single-use job token (a ``bot.core.protocol.Job``,
its claim secret included), run it with the runner's own code (``Runner.run_job``: worktree,
agent, commit, push, heartbeats, transcripts, result), then
write the step outputs (``outcome``, ``reason``, ``head_sha``, ``branch``, ``job_id``) and a
Markdown job summary. Exit 0 when the job completed, handed off or (a plan job) planned, 1
otherwise. A plan job runs the same way (``runner.planning``): it pushes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from action.inputs import ActionInputs, RunContext
from bot.core.protocol import (
    JOB,
    ActionsClaim,
    CompletedResult,
    HandoffResult,
    Job,
    JobResult,
    PlannedResult,
)
from runner.loop import Runner

log = logging.getLogger("action")

SUCCESS_OUTCOMES = frozenset({"completed", "handoff", "planned", "reviewed"})
CLAIM_ATTEMPTS = 5
SUMMARY_LIMIT = 60_000  # characters of agent text; the whole summary stays far below 1 MiB


class ClaimFailed(Exception):
    pass


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    token = env.get("INPUT_JOB_TOKEN", "").strip()
    if token:
        workflow_command("add-mask", token)  # before anything could print it
    try:
        inputs = ActionInputs.from_env(env)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        workflow_command("error", f"invalid action inputs: {problems}")
        return 1
    return asyncio.run(run(inputs, RunContext.from_env(env)))


async def run(inputs: ActionInputs, ctx: RunContext) -> int:
    outputs = {"job_id": inputs.job_id, "outcome": "", "reason": "", "head_sha": "", "branch": ""}
    try:
        job = await claim(inputs, ctx)
    except ClaimFailed as exc:
        workflow_command("error", f"could not claim {inputs.job_id}: {exc}")
        write_outputs(ctx.output_file, {**outputs, "outcome": "unclaimed", "reason": str(exc)})
        append_summary(ctx.summary_file, unclaimed_markdown(inputs.job_id, str(exc)))
        return 1
    workflow_command("add-mask", job.token)
    workflow_command("add-mask", job.claim_secret)
    log.info("claimed job=%s repo=%s issue=%s", job.job_id, job.repo, job.issue)
    report = await run_job(job, inputs, ctx)
    outcome = report.outcome if report is not None else "cancelled"
    write_outputs(
        ctx.output_file,
        {
            **outputs,
            "outcome": outcome,
            "reason": str(report.reason) if report is not None else "cancelled",
            "head_sha": _head(report) or "",
            "branch": report.branch if report is not None else job.branch,
        },
    )
    append_summary(ctx.summary_file, summary_markdown(job, report, ctx))
    if outcome in SUCCESS_OUTCOMES:
        return 0
    reason = str(report.reason) if report is not None else "the bot took the job back"
    workflow_command("error", f"{job.job_id} {outcome}: {reason}")
    return 1


async def claim(inputs: ActionInputs, ctx: RunContext) -> Job:
    """Collect the job from the bot, retrying only when the bot could not be reached."""
    url = f"{inputs.bot_url}/actions/jobs/{quote(inputs.job_id, safe='')}/claim"
    headers = {"Authorization": f"Bearer {inputs.job_token.get_secret_value()}"}
    body = ActionsClaim(
        run_id=ctx.run_id, run_attempt=ctx.run_attempt, repository=ctx.repository
    ).model_dump(mode="json")
    problem = "no attempt made"
    async with httpx.AsyncClient(headers=headers, timeout=30.0) as client:
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                resp = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                problem = f"the bot did not answer ({type(exc).__name__})"
            else:
                if resp.status_code < 500:
                    return _claimed(inputs.job_id, resp)
                problem = f"the bot answered HTTP {resp.status_code}"
            log.warning("claim_failed attempt=%d: %s", attempt + 1, problem)
            if attempt + 1 < CLAIM_ATTEMPTS:
                await asyncio.sleep(2**attempt)
    raise ClaimFailed(problem)


def _claimed(job_id: str, resp: httpx.Response) -> Job:
    if resp.status_code == 401:
        raise ClaimFailed(
            "the bot refused the job token (401): it was already used, it expired, "
            "or the bot restarted since the dispatch"
        )
    if resp.status_code == 410:
        raise ClaimFailed("the job is no longer running (cancelled or dispatched again)")
    if resp.status_code != 200:
        raise ClaimFailed(f"the bot answered HTTP {resp.status_code}")
    try:
        job = JOB.validate_json(resp.content)
    except ValidationError as exc:
        problem = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False)[:3])
        raise ClaimFailed(f"the bot answered 200 without a job: {problem}") from None
    if job.job_id != job_id:
        raise ClaimFailed("the bot answered 200 without this job")
    return job


async def run_job(job: Job, inputs: ActionInputs, ctx: RunContext) -> JobResult | None:
    """Run the job with the runner's code: the result it posted to the bot, or None when the
    bot took the job back while it ran."""
    runner = Runner(
        inputs.bot_url,
        inputs.job_token.get_secret_value(),
        workers=1,
        work_dir=ctx.temp_dir / "stoneforge",
        name=ctx.worker,
        agent_override=inputs.agent,
        agent_timeout_s=job.timeouts.agent_s or 1800,
        stall_timeout_s=job.timeouts.stall_s or 600,
    )
    return await runner.run_job(job)


# -- GitHub Actions files and workflow commands ------------------------------------------------


def workflow_command(command: str, message: str) -> None:
    """Print a workflow command (``::error::``, ``::add-mask::`` ...) on stdout."""
    escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    print(f"::{command}::{escaped}", flush=True)


def write_outputs(path: Path | None, values: Mapping[str, str]) -> None:
    """Append step outputs to ``$GITHUB_OUTPUT`` in the multi-line-safe delimiter form."""
    if path is None:
        return
    with path.open("a", encoding="utf-8") as out:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: Path | None, markdown: str) -> None:
    if path is None:
        return
    with path.open("a", encoding="utf-8") as out:
        out.write(markdown)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(job: Job, report: JobResult | None, ctx: RunContext) -> str:
    repo, issue = job.repo, job.issue
    outcome = report.outcome if report is not None else "cancelled"
    reason = str(report.reason) if report is not None else "the bot took the job back"
    icon = "↪️" if outcome == "handoff" else "❌"
    if outcome in ("completed", "planned", "reviewed"):
        icon = "✅"
    usage = report.usage if report is not None else None
    head = _head(report)
    rows = [
        ("Job", f"`{_cell(job.job_id)}`"),
        ("Issue", f"[{_cell(repo)}#{issue}]({ctx.server_url}/{repo}/issues/{issue})"),
        ("Title", _cell(job.title)),
        ("Outcome", f"{_cell(outcome)} ({_cell(reason)})"),
        ("Branch", f"`{_cell(report.branch if report is not None else job.branch)}`"),
        ("Head", f"`{_cell(head or '-')}`"),
        ("Agent", _cell(job.agent.name)),
        ("Agent time", f"{report.agent_seconds if report is not None else 0.0:.1f} s"),
    ]
    if isinstance(report, PlannedResult):
        tasks = report.plan.get("tasks")
        count = len(tasks) if isinstance(tasks, list) else 0
        rows.append(("Plan", f"{count} tasks, {len(report.errors)} errors left"))
    if usage is not None:
        rows.append(("Tokens", f"{usage.input_tokens} in / {usage.output_tokens} out"))
        if usage.cost_usd is not None:
            rows.append(("Cost", f"${usage.cost_usd:.2f}"))
    lines = [f"## {icon} Stoneforge: {repo}#{issue} {outcome}", "", "| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    text = ((report.summary if report is not None else None) or "").strip()
    if text:
        lines += ["", "### Agent summary", "", text[:SUMMARY_LIMIT]]
    detail = ((report.detail if report is not None else None) or "").strip()
    if detail:
        lines += ["", "<details><summary>Detail</summary>", "", "```text"]
        lines += [detail[:SUMMARY_LIMIT].replace("```", "` ` `"), "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def _head(report: JobResult | None) -> str | None:
    """The pushed head of a completed job or of a handoff's work in progress."""
    return report.head_sha if isinstance(report, CompletedResult | HandoffResult) else None


def unclaimed_markdown(job_id: str, reason: str) -> str:
    return f"## ❌ Stoneforge: job `{_cell(job_id)}` not claimed\n\n{reason}\n"


if __name__ == "__main__":
    sys.exit(main())
