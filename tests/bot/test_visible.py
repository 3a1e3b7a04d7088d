"""What the bot shows and enforces on GitHub: cycles and missing blockers, the status comment,
repository configuration (and its errors), priority, concurrency, metrics, redelivery.

Each test runs the real bot against fakehub; the runner's side is played over HTTP.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.adapters.github import GitHubAdapter
from bot.core.render import STATUS_MARKER
from tests.harness import World, wait_until


def _patch(world: World, number: int, **fields: object) -> None:
    with world.api() as api:
        api.patch(f"/repos/octo/app/issues/{number}", json=fields).raise_for_status()


def test_a_dependency_cycle_is_reported_on_each_issue_and_fixing_it_releases_them(
    world: World,
) -> None:
    a = world.file("Parse the config")
    b = world.file("Validate the config", body=f"Depends on #{a['number']}")
    _patch(world, a["number"], body=f"Blocked by #{b['number']}")
    for issue in (a, b):
        world.label(issue["number"])
    for issue in (a, b):
        wait_until(
            lambda n=issue["number"]: "stoneforge:blocked" in world.labels(n), what="blocked label"
        )
        wait_until(
            lambda n=issue["number"]: any(
                STATUS_MARKER in c and "cycle" in c.lower() for c in world.comments(n)
            ),
            what="status comment naming the cycle",
        )
        status = [c for c in world.comments(issue["number"]) if STATUS_MARKER in c]
        assert len(status) == 1
        assert "cycle" in status[0].lower()
        assert f"#{a['number']}" in status[0]
        assert f"#{b['number']}" in status[0]
    assert world.claim() is None, "nothing in a cycle may be dispatched"

    _patch(world, a["number"], body="No blockers any more.")
    job = wait_until(lambda: world.claim(wait_s=1), what="the released task")
    assert job["issue"] == a["number"]
    wait_until(lambda: "stoneforge:blocked" not in world.labels(a["number"]), what="label cleared")


def test_a_missing_blocker_is_reported_and_holds_the_task(world: World) -> None:
    issue = world.file("Use the ghost", body="Blocked by #999")
    world.label(issue["number"])
    wait_until(lambda: "stoneforge:blocked" in world.labels(issue["number"]), what="blocked label")
    status = wait_until(
        lambda: next((c for c in world.comments(issue["number"]) if STATUS_MARKER in c), None),
        what="status comment",
    )
    assert "#999" in status
    assert world.claim() is None


def test_one_status_comment_updated_in_place_and_eyes_when_picked_up(world: World) -> None:
    issue = world.file("Add a health check")
    world.label(issue["number"])
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    world.work(job, {"health.txt": "ok\n"})
    wait_until(lambda: world.tasks()[issue["number"]]["state"] == "merged", what="merge")

    def merged_status() -> bool:
        status = [c for c in world.comments(issue["number"]) if STATUS_MARKER in c]
        return len(status) == 1 and "Merged" in status[0]

    wait_until(merged_status, what="status comment says merged")
    edits = [e for e in world.hub.events() if e["type"].startswith("comment")]
    assert len([c for c in world.comments(issue["number"]) if STATUS_MARKER in c]) == 1, edits
    assert world.get(f"/repos/octo/app/issues/{issue['number']}")["reactions"]["eyes"] == 1
    assert not {lbl for lbl in world.labels(issue["number"]) if lbl.startswith("stoneforge:")}


def test_invalid_config_is_reported_with_the_key_and_the_last_valid_one_stays(
    world: World,
) -> None:
    world.push_main({".github/stoneforge.yml": "version: 1\nconcurrency:\n  per_repo: 1\n"})
    # A valid first file reports no check run; the concurrency assertion below fails if that
    # file was never read.
    world.settle()
    world.push_main({".github/stoneforge.yml": "version: 1\nmerge:\n  methd: squash\n"})
    run = wait_until(lambda: _config_run(world, "failure"), what="failing config check")
    assert "merge.methd" in run["output"]["title"] + run["output"]["summary"]
    assert "merge.method" in run["output"]["summary"], "the closest key is suggested"

    first, second = world.file("One"), world.file("Two")
    world.label(first["number"])
    world.label(second["number"])
    wait_until(lambda: len(world.tasks()) == 2, what="two tasks")
    assert world.claim(wait_s=2) is not None
    assert world.claim() is None, "per_repo: 1 from the last valid file still holds"


def _config_runs(world: World) -> list[dict]:
    sha = world.get("/repos/octo/app/branches/main")["commit"]["sha"]
    runs = world.get(f"/repos/octo/app/commits/{sha}/check-runs")["check_runs"]
    return [r for r in runs if r["name"] == "stoneforge/config"]


def _config_run(world: World, conclusion: str) -> dict | None:
    return next((r for r in _config_runs(world) if r["conclusion"] == conclusion), None)


def test_priority_label_goes_first(world: World) -> None:
    low = world.file("Tidy the docs")
    urgent = world.file("Fix the outage")
    with world.api() as api:
        api.post(
            f"/repos/octo/app/issues/{urgent['number']}/labels", json={"labels": ["priority: p0"]}
        ).raise_for_status()
    world.label(low["number"])
    world.label(urgent["number"])
    wait_until(lambda: len(world.tasks()) == 2, what="two tasks")
    wait_until(lambda: world.tasks()[urgent["number"]]["priority"] == 0, what="priority read")
    job = world.claim(wait_s=2)
    assert job is not None
    assert job["issue"] == urgent["number"]


def test_metrics_page_counts_deliveries_and_tasks(world: World) -> None:
    issue = world.file("Count me")
    world.label(issue["number"])
    wait_until(lambda: issue["number"] in world.tasks(), what="task")
    page = httpx.get(f"{world.bot_url}/metrics", timeout=5).text
    assert 'stoneforge_webhook_deliveries_total{event="issues",outcome="stored"}' in page
    assert 'stoneforge_tasks{state="queued"} 1' in page
    assert "stoneforge_dispatch_latency_seconds_bucket" in page


def test_failed_deliveries_are_found_and_redelivered(world: World) -> None:
    """After downtime the bot asks GitHub for deliveries that failed and gets them sent again."""
    app_id = next(iter(world.hub.state.apps))
    app = world.hub.state.apps[app_id]
    good_url = app.webhook_url
    world.hub.set_webhook_url(app_id, "http://127.0.0.1:9/webhooks/github")  # nobody listens
    issue = world.file("Filed while the bot was down")
    world.label(issue["number"])
    wait_until(
        lambda: any(r.status.startswith("failed") for r in world.hub.sender.records()),
        what="failed delivery",
    )
    world.hub.set_webhook_url(app_id, good_url)

    async def redeliver() -> int:
        github = GitHubAdapter(
            app_id=app_id, private_key=app.private_key_pem, base_url=world.hub.api_url
        )
        try:
            failed = await github.failed_deliveries(time.time() - 3600)
            for delivery_id, _ in failed:
                await github.redeliver(delivery_id)
            return len(failed)
        finally:
            await github.aclose()

    assert asyncio.run(redeliver()) >= 2  # issues.opened and issues.labeled at least
    wait_until(lambda: issue["number"] in world.tasks(), what="task from the redelivered webhook")
    assert any(r.redelivery for r in world.hub.sender.records())
