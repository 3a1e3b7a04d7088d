"""The director against fakehub: a plan job claimed and answered over the runner API, the plan
validated and filed as draft sub-issues, approval, the plan comment as tasks move, completion,
replans, the per-plan budget, and refused plan-job results.

Commands are given by calling the bot's ``Director`` on the bot's own event loop (the comment
handler calls the same methods); everything else goes through real webhooks and HTTP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from bot.core.model import IssueRef
from bot.core.plan import DRAFT_LABEL, Plan, parse_task_marker, validate_plan
from bot.core.protocol import CLAIM_SECRET_HEADER
from bot.director.service import Director
from bot.store import Store
from bot.store.plans import PlanRecord, PlanState
from tests.core.test_plan import parse_mermaid
from tests.harness import World
from tests.harness.bot import RUNNER_TOKEN

T = TypeVar("T")
MERMAID = re.compile(r"```mermaid\n(.*?)\n```", re.S)


def three_tasks(**extra: Any) -> dict[str, Any]:
    """0 <- 1 <- 2: each task blocked by the one before."""
    return {
        "summary": "Greet people in three steps.",
        "notes": ["The greeting lives in greeting.txt."],
        "tasks": [
            {"title": "Add the greeting", "files": ["greeting.txt"], "priority": 1},
            {"title": "Use the greeting", "blockers": [0], "files": ["use.txt"]},
            {"title": "Document the greeting", "blockers": [1], "files": ["DOC.md"]},
        ],
        **extra,
    }


def director(world: World) -> Director:
    assert world.bot is not None
    found: Director = world.bot.app.state.director
    return found


def store(world: World) -> Store:
    assert world.bot is not None
    found: Store = world.bot.app.state.bot.store
    return found


def on_bot(world: World, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the bot's event loop (where its parts live) and return its result."""
    assert world.bot is not None
    loop = world.bot.server.servers[0].get_loop()
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)


def epic_of(world: World, title: str = "Greet people") -> IssueRef:
    issue = world.file(title, body="We want a greeting, used and documented.")
    return IssueRef(world.repo.full_name, int(issue["number"]))


def request_plan(world: World, epic: IssueRef, guidance: str = "") -> PlanRecord:
    """``/stoneforge plan`` as the maintainer, through a real webhook; the plan it requested."""
    said = world.comment(epic.number, f"/stoneforge plan {guidance}".strip())

    def requested() -> PlanRecord | None:
        plan = store(world).current_plan(epic.repo, epic.number)
        return plan if plan is not None and plan.request_comment_id == said["id"] else None

    plan = world.wait_until(requested, what="the plan requested by the comment")
    assert plan.guidance == guidance
    return plan


def command_reply(world: World, number: int, body: str, expect: str) -> str:
    """Comment the command ``body`` on issue ``number`` as the maintainer; the bot's reply that
    says ``expect``."""
    before = len(world.comments(number))
    world.comment(number, body)
    return world.wait_until(
        lambda: next((c for c in world.comments(number)[before:] if expect in c), None),
        what=f"a reply to {body!r} saying {expect!r}",
    )


def plan_state(world: World, plan_id: str) -> PlanState | None:
    found = store(world).get_plan(plan_id)
    return None if found is None else found.state


def answer_plan(
    world: World, plan: dict[str, Any], budget_usd: float | None = None
) -> dict[str, Any]:
    """Claim the plan job (checking the budget it carries) and answer it with ``plan``."""
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["kind"] == "plan"
    assert job["budget_usd"] == budget_usd
    resp = world.report(job, {"outcome": "planned", "reason": "success", "plan": plan})
    assert resp.status_code == 200, resp.text
    return job


def filed(world: World, epic: IssueRef) -> dict[int, dict[str, Any]]:
    """The epic's sub-issues by their plan index."""
    subs = world.get(f"/repos/{epic.repo}/issues/{epic.number}/sub_issues")
    out = {}
    for issue in subs:
        marker = parse_task_marker(issue.get("body"))
        assert marker is not None
        out[marker[1]] = issue
    return out


def plan_comment(world: World, epic: IssueRef, plan_id: str) -> str | None:
    marker = f"<!-- stoneforge:plan {plan_id} -->"
    return next((c for c in world.comments(epic.number) if marker in c), None)


def drafted(
    world: World, epic: IssueRef, raw: dict[str, Any], budget_usd: float | None = None
) -> tuple[str, dict[int, Any]]:
    plan = request_plan(world, epic)
    answer_plan(world, raw, budget_usd)
    world.wait_until(
        lambda: plan_state(world, plan.plan_id) == PlanState.DRAFTED, what="the plan drafted"
    )
    return plan.plan_id, filed(world, epic)


def approve(world: World, epic: IssueRef) -> None:
    """``/stoneforge approve`` as the maintainer, through a real webhook."""
    plan = store(world).current_plan(epic.repo, epic.number)
    assert plan is not None
    world.comment(epic.number, "/stoneforge approve")
    world.wait_until(
        lambda: plan_state(world, plan.plan_id) == PlanState.APPROVED, what="the plan approved"
    )
    world.settle()


@pytest.mark.slow
def test_a_plan_is_filed_as_a_draft_then_approved_and_runs_to_completion(world: World) -> None:
    epic = epic_of(world)
    plan_id, issues = drafted(world, epic, three_tasks())

    # Filed: three draft sub-issues, each blocked by the one before, and the plan comment.
    assert sorted(issues) == [0, 1, 2]
    for issue in issues.values():
        assert DRAFT_LABEL in {lbl["name"] for lbl in issue["labels"]}
    blockers = world.get(f"/repos/{epic.repo}/issues/{issues[2]['number']}/dependencies/blocked_by")
    assert [b["number"] for b in blockers] == [issues[1]["number"]]
    comment = plan_comment(world, epic, plan_id)
    assert comment is not None
    assert "**draft**" in comment
    match = MERMAID.search(comment)
    assert match is not None
    nodes, edges, _ = parse_mermaid(match.group(1))
    assert edges == {("t0", "t1"), ("t1", "t2")}
    assert nodes["t0"] == (f"#{issues[0]['number']} Add the greeting", "draft")

    # A draft is never dispatched, even when a maintainer labels it by hand.
    world.label(issues[0]["number"])
    world.settle()
    assert world.claim() is None
    assert issues[0]["number"] not in world.tasks()

    approve(world, epic)
    tasks = world.tasks()
    assert {issues[i]["number"] for i in range(3)} <= set(tasks)
    assert DRAFT_LABEL not in world.labels(issues[1]["number"])
    first = world.claim(wait_s=5)
    assert first is not None
    assert first["issue"] == issues[0]["number"], "dependency order: the root first"
    assert first["plan"]["epic"] == epic.number
    assert first["plan"]["notes"] == ["The greeting lives in greeting.txt."]
    assert first["plan"]["landed"] == []
    assert world.claim() is None, "the others wait for their blockers"

    world.work(first, {"greeting.txt": "hi\n"})

    def shows_merged() -> bool:
        text = plan_comment(world, epic, plan_id) or ""
        found = MERMAID.search(text)
        return found is not None and parse_mermaid(found.group(1))[0]["t0"][1] == "merged"

    world.wait_until(shows_merged, timeout=60, what="the plan comment to show the merge")

    second = world.claim(wait_s=10)
    assert second is not None
    assert second["issue"] == issues[1]["number"]
    (landed,) = second["plan"]["landed"]
    assert landed["issue"] == issues[0]["number"]
    assert landed["files"] == ["greeting.txt"]
    assert landed["pull_number"] == world.tasks()[issues[0]["number"]]["pr"]
    world.work(second, {"use.txt": "use it\n"})
    third = world.wait_until(lambda: world.claim(wait_s=2), timeout=60, what="the third task")
    assert third["issue"] == issues[2]["number"]
    world.work(third, {"DOC.md": "# Greeting\n"})

    def closed() -> dict[str, Any] | None:
        issue = world.get(f"/repos/{epic.repo}/issues/{epic.number}")
        return issue if issue["state"] == "closed" else None

    issue = world.wait_until(closed, timeout=90, what="the epic closed")
    assert issue["state_reason"] == "completed"
    summary = next(c for c in world.comments(epic.number) if "plan completed" in c)
    assert "3 tasks merged" in summary
    assert "| attempts | 3 |" in summary
    assert plan_state(world, plan_id) == PlanState.COMPLETED


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"tasks": [{"title": "a", "blockers": [3]}]}, "index 3 does not exist"),
        (
            {"tasks": [{"title": "a", "blockers": [1]}, {"title": "b", "blockers": [0]}]},
            "dependency cycle",
        ),
    ],
)
def test_an_invalid_plan_is_reported_on_the_epic_and_nothing_is_filed(
    world: World, raw: dict[str, Any], error: str
) -> None:
    epic = epic_of(world)
    plan = request_plan(world, epic)
    answer_plan(world, raw)
    world.wait_until(
        lambda: plan_state(world, plan.plan_id) == PlanState.INVALID, what="the plan refused"
    )
    comment = world.wait_until(lambda: plan_comment(world, epic, plan.plan_id), what="comment")
    assert "plan refused" in comment
    assert error in comment
    assert world.get(f"/repos/{epic.repo}/issues/{epic.number}/sub_issues") == []
    assert world.get(f"/repos/{epic.repo}/issues?labels={DRAFT_LABEL}") == []
    # A new plan may be asked for at once.
    assert request_plan(world, epic).plan_id != plan.plan_id


def test_a_second_plan_request_is_refused_while_one_is_being_made(world: World) -> None:
    epic = epic_of(world)
    request_plan(world, epic)
    reply = command_reply(world, epic.number, "/stoneforge plan", "already being made")
    assert reply.startswith("A plan for this issue is already being made")


def test_a_restart_while_filing_files_the_rest_without_duplicates(world: World) -> None:
    epic = epic_of(world)
    plan = request_plan(world, epic)
    full = validate_plan(three_tasks())
    assert isinstance(full, Plan)
    d = director(world)
    # A bot that stopped half-way: the first task filed, then the plan left in ``filing``.
    half = Plan(summary="", notes=(), tasks=full.tasks[:1])
    on_bot(world, d.jobs.filer.file(world.installation_id, epic, plan.plan_id, half))
    assert len(filed(world, epic)) == 1
    store(world).update_plan(plan.plan_id, state=PlanState.FILING, plan_json=full.model_dump_json())
    on_bot(world, d.upkeep())  # what a restarted bot does first
    world.wait_until(lambda: plan_state(world, plan.plan_id) == PlanState.DRAFTED, what="drafted")
    on_bot(world, d.upkeep())
    issues = filed(world, epic)
    assert sorted(issues) == [0, 1, 2]
    listed = world.get(f"/repos/{epic.repo}/issues?labels={DRAFT_LABEL}&state=all")
    assert len(listed) == 3, "no duplicate"


def test_replan_closes_the_tasks_that_have_not_started_and_keeps_the_running_one(
    world: World,
) -> None:
    epic = epic_of(world)
    plan_id, issues = drafted(world, epic, three_tasks())
    approve(world, epic)
    running = world.claim(wait_s=5)
    assert running is not None
    assert running["issue"] == issues[0]["number"]

    command_reply(world, epic.number, "/stoneforge replan smaller steps", "Closed 2")
    world.settle()
    for index in (1, 2):
        issue = world.get(f"/repos/{epic.repo}/issues/{issues[index]['number']}")
        assert (issue["state"], issue["state_reason"]) == ("closed", "not_planned")
    assert world.get(f"/repos/{epic.repo}/issues/{issues[0]['number']}")["state"] == "open"
    assert plan_state(world, plan_id) == PlanState.REPLACED
    tasks = world.tasks()
    assert tasks[issues[1]["number"]]["state"] == "cancelled"
    assert tasks[issues[0]["number"]]["state"] == "running"

    job = world.claim(wait_s=5)
    assert job is not None
    assert job["kind"] == "plan"
    assert job["guidance"] == "smaller steps"
    assert [k["issue"] for k in job["kept"]] == [issues[0]["number"]]


def test_the_plan_budget_pauses_the_plan_and_says_so(world: World) -> None:
    world.push_main({".github/stoneforge.yml": "version: 1\nbudget:\n  per_plan_usd: 1\n"})
    world.wait_until(
        lambda: director(world).repos.config(world.repo.full_name).budget.per_plan_usd == 1,
        what="the configuration loaded",
    )
    epic = epic_of(world)
    plan_id, issues = drafted(world, epic, three_tasks(), budget_usd=1.0)
    approve(world, epic)
    job = world.claim(wait_s=5)
    assert job is not None
    resp = world.report(
        job,
        {"outcome": "handoff", "reason": "max_turns", "usage": {"cost_usd": 1.5}},
    )
    assert resp.status_code == 200, resp.text

    def paused() -> str | None:
        return next((c for c in world.comments(epic.number) if "paused this plan" in c), None)

    comment = world.wait_until(paused, timeout=30, what="the budget comment")
    assert "$1.50 of $1.00" in comment
    rows = store(world).tasks_of_plan(plan_id)
    assert [t.paused for t in rows] == [True, True, True]
    assert world.tasks()[issues[0]["number"]]["state"] == "queued", "handed off: ready again"
    assert world.claim(wait_s=1) is None, "but paused with its plan"


def test_a_forged_or_stale_plan_job_result_is_refused(world: World) -> None:
    epic = epic_of(world)
    plan = request_plan(world, epic)
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["job_id"] == f"{epic}@plan-{plan.plan_id}-1"
    result = {"outcome": "planned", "reason": "success", "plan": three_tasks()}
    url = f"{world.bot_url}/runner/jobs/{quote(job['job_id'], safe='')}/result"
    auth = {"Authorization": f"Bearer {RUNNER_TOKEN}"}

    forged = httpx.post(url, json=result, headers={**auth, CLAIM_SECRET_HEADER: "x" * 32})
    assert forged.status_code == 403, forged.text
    stale_id = f"{epic}@plan-{plan.plan_id}-7"
    stale = world.report({**job, "job_id": stale_id}, result)
    assert stale.status_code == 409, stale.text
    beat = httpx.post(
        f"{world.bot_url}/runner/jobs/{quote(job['job_id'], safe='')}/heartbeat",
        json={},
        headers=world.headers(job),
    )
    assert beat.status_code == 200, beat.text

    assert world.report(job, result).status_code == 200
    again = world.report(job, result)
    assert again.status_code == 409, "a finished plan job takes no second result"


def test_an_expired_plan_job_is_planned_again_and_its_late_result_refused(world: World) -> None:
    epic = epic_of(world)
    plan = request_plan(world, epic)
    lost = world.claim(wait_s=5)
    assert lost is not None
    store(world).update_plan(plan.plan_id, lease_until=1.0)  # its runner went silent
    on_bot(world, director(world).upkeep())
    assert plan_state(world, plan.plan_id) == PlanState.REQUESTED
    result = {"outcome": "planned", "reason": "success", "plan": three_tasks()}
    assert world.report(lost, result).status_code == 409

    again = world.claim(wait_s=5)
    assert again is not None
    assert again["job_id"] == f"{epic}@plan-{plan.plan_id}-2"
    limited = world.report(
        again, {"outcome": "rate_limited", "agent": "script", "retry_at": 4_000_000_000}
    )
    assert limited.status_code == 200, limited.text
    assert plan_state(world, plan.plan_id) == PlanState.REQUESTED
    assert world.claim() is None, "held until the provider's reset"
    comment = plan_comment(world, epic, plan.plan_id)
    assert comment is not None
    assert "rate limit" in comment


def test_status_pause_and_resume_act_on_the_epic_s_plan(world: World) -> None:
    epic = epic_of(world)
    d = director(world)
    other = epic_of(world, "Not an epic")
    assert on_bot(world, d.status(world.installation_id, other)) is None
    assert on_bot(world, d.plan_tasks(other)) is None
    assert on_bot(world, d.set_paused(other, True)) is False

    plan_id, issues = drafted(world, epic, three_tasks())
    status = command_reply(world, epic.number, "/stoneforge status", "Document the greeting")
    assert f"#{issues[2]['number']} Document the greeting · **draft**" in status
    match = MERMAID.search(status)
    assert match is not None
    assert parse_mermaid(match.group(1))[1] == {("t0", "t1"), ("t1", "t2")}

    approve(world, epic)
    refs = on_bot(world, d.plan_tasks(epic))
    assert refs is not None
    assert sorted(r.number for r in refs) == sorted(i["number"] for i in issues.values())
    world.comment(epic.number, "/stoneforge pause")
    world.settle()
    assert all(world.tasks()[i["number"]]["paused"] for i in issues.values())
    assert world.claim(wait_s=1) is None, "paused: nothing of the plan is dispatched"
    world.comment(epic.number, "/stoneforge resume")
    world.settle()
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["issue"] == issues[0]["number"]
    command_reply(world, epic.number, "/stoneforge approve", "only a drafted plan")


def test_a_failed_task_leaves_the_epic_open_with_its_reason_in_the_plan_comment(
    world: World,
) -> None:
    epic = epic_of(world)
    plan_id, issues = drafted(world, epic, three_tasks())
    approve(world, epic)
    job = world.claim(wait_s=5)
    assert job is not None
    failed = world.report(
        job, {"outcome": "failed", "reason": "tests_failed", "detail": "2 tests fail"}
    )
    assert failed.status_code == 200, failed.text

    def says_failed() -> str | None:
        text = plan_comment(world, epic, plan_id) or ""
        return text if "Needs a person" in text else None

    comment = world.wait_until(says_failed, what="the plan comment to show the failure")
    assert f"#{issues[0]['number']} failed" in comment
    assert "failed: tests_failed: 2 tests fail" in comment
    assert world.get(f"/repos/{epic.repo}/issues/{epic.number}")["state"] == "open"
    assert plan_state(world, plan_id) == PlanState.APPROVED


def test_an_approval_a_stopped_bot_left_half_done_is_finished(world: World) -> None:
    # The bot stopped inside /stoneforge approve: the plan is approved and one issue already
    # carries the trigger label the App put on, but no task was made. Reconciliation neither
    # trusts the App as a labeler nor takes its label away, and the director's upkeep makes
    # every task, once.
    epic = epic_of(world)
    plan_id, issues = drafted(world, epic, three_tasks())
    store(world).update_plan(plan_id, state=PlanState.APPROVED, approved_by=world.maintainer.login)
    first = issues[0]["number"]
    with world.api(world.bot_token) as api:
        api.post(
            f"/repos/{epic.repo}/issues/{first}/labels", json={"labels": ["agent-ready"]}
        ).raise_for_status()
    world.settle()
    on_bot(world, world.bot.app.state.bot.reconciler.reconcile())  # type: ignore[union-attr]
    assert "agent-ready" in world.labels(first)
    assert world.tasks() == {}

    assert on_bot(world, director(world).upkeep()) is None
    tasks = world.tasks()
    assert sorted(tasks) == sorted(i["number"] for i in issues.values())
    assert {t["plan_id"] for t in tasks.values()} == {plan_id}
    assert all("stoneforge:draft" not in world.labels(n) for n in tasks)
    on_bot(world, director(world).upkeep())
    assert sorted(world.tasks()) == sorted(tasks)
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["issue"] == issues[0]["number"]
