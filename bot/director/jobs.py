"""Plan jobs' ids and who holds them (``bot.job_claims`` does the same for tasks' jobs).

A plan job id is ``<repo>#<epic>@plan-<plan_id>-<dispatch>``: the plan's dispatch count, which
the store raises at every claim and never resets, so a plan job id is never reused, and the
``@plan-`` form tells the runner API to send the job's heartbeats, transcripts and result to
the director. The claim secret goes to the claiming runner only; the store keeps its SHA-256.
"""

from __future__ import annotations

from bot.core.model import IssueRef
from bot.job_claims import JobRefused, holder_refusal, not_running
from bot.store.plans import PlanRecord, PlanState

PLAN_JOB_TAG = "@plan-"


def plan_job_id(repo: str, epic: int, plan_id: str, dispatch: int) -> str:
    return f"{IssueRef(repo, epic)}{PLAN_JOB_TAG}{plan_id}-{dispatch}"


def is_plan_job(jid: str) -> bool:
    return PLAN_JOB_TAG in jid


def parse_plan_job_id(jid: str) -> tuple[IssueRef, str, int] | None:
    """``(epic, plan_id, dispatch)`` of a plan job id, or None."""
    ref_text, tag, tail = jid.rpartition(PLAN_JOB_TAG)
    plan_id, _, number = tail.rpartition("-")
    if not tag or not plan_id or not number.isdigit():
        return None
    try:
        return IssueRef.parse(ref_text), plan_id, int(number)
    except ValueError:
        return None


def plan_refusal(
    jid: str, plan: PlanRecord | None, owner: str, secret: str | None
) -> JobRefused | None:
    """Why ``owner``, presenting ``secret``, may not act for plan job ``jid`` whose plan is
    ``plan`` (None: it may): 409 when it is not the plan's running job, 403 when another runner
    holds it or the secret is wrong or missing."""
    parsed = parse_plan_job_id(jid)
    if (
        parsed is None
        or plan is None
        or IssueRef(plan.repo, plan.epic) != parsed[0]
        or plan.plan_id != parsed[1]
        or plan.state != PlanState.PLANNING
        or plan.dispatches != parsed[2]
    ):
        return not_running(jid)
    return holder_refusal(jid, plan.job_owner, plan.job_secret_hash, owner, secret)
