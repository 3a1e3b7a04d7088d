"""A claim while GitHub refuses the reads a job needs: 503 with ``Retry-After``, the task given
back (not a 500 with a traceback), and the next claim hands it out."""

from __future__ import annotations

import httpx

from tests.harness import RUNNER_TOKEN, World


def test_a_claim_github_refuses_is_a_503_and_the_task_waits_for_the_next(world: World) -> None:
    number = world.file_labeled("Add the greeting")
    world.wait_until(lambda: number in world.tasks(), 30, "the task")
    headers = {"Authorization": f"Bearer {RUNNER_TOKEN}"}
    claim = {"runner": "test", "worker": "w0", "wait_s": 0}
    world.hub.faults.update(error_rate=1.0)  # every REST call: 502 or 503
    try:
        resp = httpx.post(f"{world.bot_url}/runner/claim", json=claim, headers=headers, timeout=30)
    finally:
        world.hub.faults.update(error_rate=0.0)
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    assert world.tasks()[number]["state"] == "queued"
    job = world.claim()
    assert job is not None
    assert job["issue"] == number
