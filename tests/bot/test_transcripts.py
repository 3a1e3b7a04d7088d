"""Agent transcripts: uploaded by the runner, served by link, linked on the issue and the PR.

The runner's side is played by the test: it builds each try's upload with the runner's own
``runner.transcripts.collect`` (so what is posted is what a runner would post) and drives the
job over HTTP, as in test_pipeline.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from runner import transcripts
from runner.loop import Runner
from tests.harness import RUNNER_TOKEN, World, wait_until

API_KEY = "sk-ant-api03-" + "Qr7" * 30
PUBLIC_URL = "http://127.0.0.1:8000"  # BotSettings.public_url's default, which the world keeps


def _public_links(world: World, text: str) -> list[str]:
    """Transcript links in ``text`` (made from the public URL), pointed at the test's bot."""
    found = re.findall(r"\(([^)\s]+/transcripts/[A-Za-z0-9_-]{32})\)", text)
    assert all(link.startswith(f"{PUBLIC_URL}/transcripts/") for link in found), found
    return [world.bot_url + link.removeprefix(PUBLIC_URL) for link in found]


def _labeled_task(world: World, title: str) -> dict[str, Any]:
    issue = world.file(title)
    world.label(issue["number"])
    wait_until(lambda: issue["number"] in world.tasks(), what="task")
    return issue


def _upload(world: World, job: dict[str, Any], number: int, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{world.bot_url}/runner/jobs/{quote(job['job_id'], safe='')}/transcripts",
        json={
            "try": number,
            "agent": "script",
            "outcome": "completed",
            "reason": "success",
            "seconds": 2.5,
            "usage": {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.25},
            **body,
        },
        headers=World.headers(job),
        timeout=10,
    )


def _runner_upload(world: World, job: dict[str, Any], number: int) -> str:
    """What a runner posts after try ``number``: its output, masked with the job's token."""
    logs = Path(tempfile.mkdtemp(prefix="logs-", dir=world.tmp))
    events = [
        {"type": "text", "text": f"try {number}: cloning with {job['token']}"},
        {"type": "tool", "input": f"ANTHROPIC_API_KEY={API_KEY} ./run"},
        {"type": "result", "text": f"finished try {number}"},
    ]
    (logs / "stdout.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (logs / "stderr.log").write_text(f"auth: {API_KEY}\n")
    text = transcripts.collect(logs, secrets=(job["token"], RUNNER_TOKEN))
    resp = _upload(world, job, number, text=text)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["url"])


def _pulls(world: World) -> list[dict[str, Any]]:
    return list(world.get("/repos/octo/app/pulls?state=all"))


def _status_comment(world: World, number: int) -> str:
    return next((c for c in world.comments(number) if "stoneforge:status" in c), "")


def test_a_transcript_is_served_redacted_and_linked_from_the_issue_and_the_pr(
    world: World,
) -> None:
    issue = _labeled_task(world, "Add the greeting")
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    wait_until(lambda: "Running" in _status_comment(world, issue["number"]), what="running")
    first = _runner_upload(world, job, 1)
    # The running task's status comment links the transcript at once, not at the next state.
    running = wait_until(
        lambda: (c := _status_comment(world, issue["number"])) and "Transcripts" in c and c,
        what="the first try's link while the job runs",
    )
    assert world.tasks()[issue["number"]]["state"] == "running"
    assert first.rsplit("/", 1)[1] in running
    links = [first, _runner_upload(world, job, 2)]

    served = [world.bot_url + "/transcripts/" + link.rsplit("/", 1)[1] for link in links]
    resp = httpx.get(served[0], timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["x-content-type-options"] == "nosniff"
    header, _, text = resp.text.partition("\n")
    facts = json.loads(header)
    assert facts["task"] == f"octo/app#{issue['number']}"
    assert (facts["attempt"], facts["try"], facts["agent"]) == (1, 1, "script")
    assert "finished try 1" in text
    assert transcripts.STDERR_HEADER in text
    assert job["token"] not in resp.text
    assert API_KEY not in resp.text
    assert "Qr7Qr7" not in resp.text

    world.work(job, {"greeting.txt": "hi\n"})
    (pull,) = wait_until(lambda: _pulls(world), what="the pull request")
    body = pull["body"]
    assert f"Closes #{issue['number']}" in body
    assert "### Attempts" in body
    assert _public_links(world, body) == served, "both tries' transcripts, in order"
    row = next(line for line in body.splitlines() if line.startswith("| 1 |"))
    assert "| 2 |" in row, "two tries"
    assert "completed" in row
    assert "`script`" in row
    assert "[try 1](" in row
    assert "[try 2](" in row

    comment = wait_until(
        lambda: (
            (c := _status_comment(world, issue["number"]))
            and len(_public_links(world, c)) > 1
            and c
        ),
        what="both transcript links in the status comment",
    )
    assert _public_links(world, comment) == served

    assert httpx.get(f"{world.bot_url}/transcripts/{'x' * 32}", timeout=10).status_code == 404
    assert httpx.get(f"{world.bot_url}/transcripts/..%2Fetc", timeout=10).status_code == 404


def test_uploads_are_refused_when_stale_unauthorised_too_large_or_malformed(world: World) -> None:
    issue = _labeled_task(world, "Breaks the tests")
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    url = f"{world.bot_url}/runner/jobs/{quote(job['job_id'], safe='')}/transcripts"

    wrong = httpx.post(url, json={"text": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    huge = _upload(world, job, 1, text="x" * (5 * 1024 * 1024))
    assert huge.status_code == 413
    untyped = _upload(world, job, 1, text=None)
    assert untyped.status_code == 422
    assert untyped.json()["message"].startswith("text: ")
    body = {"try": 1, "outcome": "completed", "seconds": float("nan"), "text": "x"}
    nan = httpx.post(url, content=json.dumps(body), headers=World.headers(job), timeout=10)
    assert nan.status_code == 422
    assert nan.json()["message"].startswith("seconds: ")
    negative = _upload(world, job, 1, text="x", seconds=-1)
    assert negative.status_code == 422
    assert "seconds" in negative.json()["message"]

    forged = {**job, "claim_secret": "not-the-secret-of-this-job"}
    refused = _upload(world, forged, 1, text="forged")
    assert refused.status_code == 403
    assert "claim secret" in refused.json()["message"]

    older = {**job, "job_id": job["job_id"].replace("@1", "@0")}
    assert _upload(world, older, 1, text="old attempt").status_code == 409

    world.report(job, {"outcome": "failed", "reason": "tests_failed", "detail": "2 failed"})
    wait_until(lambda: world.tasks()[issue["number"]]["state"] == "failed", what="failed")
    stale = _upload(world, job, 2, text="after the result")
    assert stale.status_code == 409
    assert "is not running" in stale.json()["message"]


def _push(world: World, job: dict[str, Any], files: dict[str, str | None]) -> str:
    """Commit on top of the task branch as the job's runner would, and push; the new head."""
    checkout = Path(tempfile.mkdtemp(prefix="push-", dir=world.tmp))
    header = base64.b64encode(f"x-access-token:{job['token']}".encode()).decode()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "http.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Basic {header}"}  # fmt: skip

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=checkout, env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    subprocess.run(["git", "clone", "-q", "-b", job["branch"], job["clone_url"], "."], cwd=checkout,
                   env=env, capture_output=True, check=True)  # fmt: skip
    for path, text in files.items():
        if text is None:
            (checkout / path).unlink()
        else:
            (checkout / path).write_text(text)
    git("add", "-A")
    git("commit", "-qm", "fix")
    git("push", "-q", "origin", f"HEAD:refs/heads/{job['branch']}")
    return git("rev-parse", "HEAD")


def test_a_later_completed_run_rewrites_the_same_pull_request(world: World) -> None:
    # Red CI fails the task at once here (no rounds of fixing it on the same branch): the
    # maintainer's retry below is what makes the later run.
    world.push_main({".github/stoneforge.yml": "version: 1\nsteward:\n  fix_attempts: 0\n"})
    assert world.bot is not None
    repos = world.bot.app.state.bot.repos
    wait_until(lambda: repos.config("octo/app").steward.fix_attempts == 0, what="the configuration")
    issue = _labeled_task(world, "Make it green")
    number = issue["number"]
    first = wait_until(lambda: world.claim(wait_s=1), what="first run")
    first_link = _runner_upload(world, first, 1)
    world.work(first, {"RED": "this makes CI fail\n"})  # opens the pull request, CI goes red
    wait_until(lambda: world.tasks()[number]["state"] == "failed", what="red CI fails the task")
    (pull,) = _pulls(world)
    assert pull["state"] == "open"
    assert len(_public_links(world, pull["body"])) == 1

    with world.api() as api:  # a maintainer retries: remove and re-add the trigger label
        api.delete(f"/repos/octo/app/issues/{number}/labels/agent-ready").raise_for_status()
    world.label(number)
    second = wait_until(lambda: world.claim(wait_s=1), what="second run")
    assert second["branch"] == first["branch"]
    second_link = _runner_upload(world, second, 1)
    head = _push(world, second, {"RED": None, "greeting.txt": "hi\n"})
    resp = world.report(
        second,
        {"outcome": "completed", "reason": "success", "head_sha": head, "summary": "Now green",
         "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5},
         "attempt_log": [{"try": 1, "outcome": "completed", "reason": "success"}]},
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    wait_until(lambda: world.tasks()[number]["state"] in ("in_review", "merged"), what="review")

    pulls = _pulls(world)
    assert [p["number"] for p in pulls] == [pull["number"]], "the same pull request, no second"
    assert len([e for e in world.hub.events("pr_opened")]) == 1
    body = pulls[0]["body"]
    assert "Now green" in body
    links = _public_links(world, body)
    assert [link.rsplit("/", 1)[1] for link in links] == [
        first_link.rsplit("/", 1)[1],
        second_link.rsplit("/", 1)[1],
    ]
    rows = [line for line in body.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 2, "one row per run (the retry restarted at attempt 1)"
    assert "10 / 5" in rows[1]
    assert "$0.50" in rows[1]
    assert "**Total:**" in body


@pytest.mark.slow
def test_a_real_runner_uploads_each_try_and_the_pull_request_links_it(world: World) -> None:
    script = {
        "edits": [{"path": "greeting.txt", "write": "hi\n"}],
        "summary": f"Added the greeting (the agent quoted {API_KEY})",
    }
    issue = world.file("Add the greeting", f"```stoneforge-script\n{json.dumps(script)}\n```")
    world.label(issue["number"])
    started: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            started["loop"], started["stop"] = asyncio.get_running_loop(), asyncio.Event()
            runner = Runner(world.bot_url, RUNNER_TOKEN, workers=1, claim_wait_s=1,
                            work_dir=world.tmp / "runner")  # fmt: skip
            await runner.run(started["stop"])

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        (pull,) = wait_until(lambda: _pulls(world), timeout=60, what="the pull request")
    finally:
        wait_until(lambda: "stop" in started, what="the runner to start")
        started["loop"].call_soon_threadsafe(started["stop"].set)
        thread.join(30)
    (link,) = _public_links(world, pull["body"])
    assert API_KEY not in pull["body"]
    resp = httpx.get(link, timeout=10)
    assert resp.status_code == 200
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines[0]["try"] == 1
    assert lines[0]["outcome"] == "completed"
    assert {"type": "edit", "path": "greeting.txt"}.items() <= lines[2].items()
    assert lines[-1]["type"] == "result"
    assert API_KEY not in resp.text
