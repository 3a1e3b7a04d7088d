"""The runner daemon end to end, against a tiny in-test bot and a local bare repository."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import runner.agents
from runner.agents.base import Invocation, RunRequest
from runner.agents.claude import ClaudeAdapter
from runner.agents.codex import CodexAdapter
from runner.agents.script import ScriptAdapter
from runner.git import _state_for
from runner.job import prune_logs
from runner.loop import Runner
from tests.harness.runner_bot import (
    INSTALLATION_TOKEN,
    TOKEN,
    Bot,
    git,
    job,
    remote_branch,
    run_until,
)

FAKE_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "fake_claude.py"
FAKE_CODEX = FAKE_CLAUDE.with_name("fake_codex.py")


def worktree_dirs(work: Path) -> list[Path]:
    return sorted(work.glob("workspaces/*/*/*"))


# A fake agent for the paths the script agent cannot take: it follows the `fake-plan` block of
# its prompt, the "first" steps on a first try and the "retry" steps when the prompt is a retry
# prompt, records every prompt it gets, and speaks the script agent's JSON lines.
FAKE_AGENT = r"""
import json, pathlib, re, sys, time
prompt = sys.stdin.read()
plan = json.loads(re.search(r"```fake-plan\n(.*?)\n```", prompt, re.S).group(1))
with open(plan["record"], "a") as fh:
    fh.write(prompt + "\n=====\n")
print(json.dumps({"type": "start"}), flush=True)
retry = "## Your previous try did not pass" in prompt
for step in plan["retry" if retry else "first"]:
    if "sleep" in step:
        time.sleep(step["sleep"])
    else:
        path = pathlib.Path(step["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(step["text"])
print(json.dumps({"type": "result", "status": "success", "summary": plan.get("summary", "ok")}))
"""


class FakeAdapter(ScriptAdapter):
    name = "fake"

    def build(self, req: RunRequest) -> Invocation:
        argv = [sys.executable, "-c", FAKE_AGENT]
        return Invocation(argv=argv, env={}, cwd=req.workdir, stdin=req.prompt.encode())


@pytest.fixture
def fake_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.agents._FACTORIES, "fake", FakeAdapter)


def planned(origin: Path, issue: int, record: Path, first: list[Any], retry: list[Any],
            **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A job for the fake agent."""
    plan = {"record": str(record), "first": first, "retry": retry, "summary": f"did {issue}"}
    body = f"Please.\n\n```fake-plan\n{json.dumps(plan)}\n```\n"
    return {**job(origin, issue, {}), "body": body, "agent": {"name": "fake", "model": None},
            **extra}  # fmt: skip


def write(path: str, text: str) -> dict[str, str]:
    return {"path": path, "text": text}


async def test_two_jobs_run_concurrently_and_push(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake, url = bot
    fake.reject_claims = 2
    users = {"path": "app/users.py", "write": "USERS = []\n"}
    auth = {"path": "app/auth.py", "replace": ["'old'", "'new'"]}
    fake.jobs = [
        job(origin, 1, {"sleep": 1.0, "edits": [users], "summary": "Added users"}),
        job(origin, 2, {"sleep": 1.0, "edits": [auth], "summary": "auth"}),
    ]
    events: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append({**event, "at": time.monotonic()})

    runner = Runner(url, TOKEN, workers=2, work_dir=tmp_path / "work", on_event=on_event,
                    heartbeat_s=0.2, claim_wait_s=1, retry_base_s=0.05)  # fmt: skip
    await run_until(runner, fake, 2)

    r1, r2 = fake.results["octo/demo#1@1"], fake.results["octo/demo#2@1"]
    for result, issue in ((r1, 1), (r2, 2)):
        assert result["outcome"] == "completed", result
        assert result["reason"] == "success"
        assert result["branch"] == f"stoneforge/{issue}-task"
        assert result["agent_seconds"] >= 1.0
        assert result["head_sha"] == git("rev-parse", result["branch"], cwd=origin).strip()
        message = git("log", "-1", "--format=%an <%ae>%n%B", result["branch"], cwd=origin)
        assert message.startswith("stoneforge[bot] <stoneforge[bot]@users.noreply.github.com>\n")
        assert f"Task number {issue}\n\nStoneforge-Task: octo/demo#{issue}" in message
    assert r1["summary"] == "Added users"
    assert git("show", "stoneforge/1-task:app/users.py", cwd=origin) == "USERS = []\n"
    assert git("show", "stoneforge/2-task:app/auth.py", cwd=origin) == "SECRET = 'new'\n"
    assert "app/users.py" not in git("ls-tree", "-r", "--name-only", "main", cwd=origin)

    started = {e["job_id"]: e for e in events if e["type"] == "job_started"}
    finished = {e["job_id"]: e for e in events if e["type"] == "agent_finished"}
    assert {e["worker"] for e in started.values()} == {"runner-1/w0", "runner-1/w1"}
    worktrees = {e["worktree"] for e in started.values()}
    assert len(worktrees) == 2
    assert max(e["at"] for e in started.values()) < min(e["at"] for e in finished.values())
    for path in map(Path, worktrees):  # released: kept warm for the next task, but clean
        assert not git("branch", "--show-current", cwd=path).strip()
        assert not git("status", "--porcelain", cwd=path).strip()
    assert {e["type"] for e in events} >= {"job_started", "agent_finished", "pushed"}
    assert "octo/demo#1@1" in fake.heartbeats

    assert "401" in caplog.text  # logged, retried, and the jobs still ran
    assert TOKEN not in caplog.text
    assert INSTALLATION_TOKEN not in caplog.text


async def test_failures_are_reported(bot: tuple[Bot, str], origin: Path, tmp_path: Path) -> None:
    fake, url = bot
    fake.fail_results = 1  # the first result post gets a 503 and must be retried
    fake.jobs = [
        job(origin, 3, {"edits": [{"path": "app/auth.py", "replace": ["absent", "x"]}]}),
        job(origin, 4, {"edits": [], "summary": "nothing to do"}),
        job(origin, 5, {"edits": []}, agent={"name": "no-such-agent"}),
        job(origin, 6, {"edits": []}, clone_url=(tmp_path / "missing.git").as_uri()),
    ]
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=2, work_dir=tmp_path / "work", on_event=events.append,
                    claim_wait_s=1, retry_base_s=0.05)  # fmt: skip
    await run_until(runner, fake, 4)

    reasons = {job_id: r["reason"] for job_id, r in fake.results.items()}
    assert reasons == {
        "octo/demo#3@1": "script_error",
        "octo/demo#4@1": "no_changes",
        "octo/demo#5@1": "unknown_agent",
        "octo/demo#6@1": "git_error",
    }
    assert all(r["outcome"] == "failed" for r in fake.results.values())
    assert "not found" in fake.results["octo/demo#3@1"]["detail"]
    assert [t["try"] for t in fake.results["octo/demo#3@1"]["attempt_log"]] == [1]  # no retry
    no_changes = fake.results["octo/demo#4@1"]
    assert "no changes" in no_changes["detail"]
    assert [(t["try"], t["reason"]) for t in no_changes["attempt_log"]] == [
        (1, "no_changes"),
        (2, "no_changes"),
    ]
    assert INSTALLATION_TOKEN not in json.dumps(fake.results)
    assert sorted(e["job_id"] for e in events if e["type"] == "job_failed") == sorted(reasons)
    assert not worktree_dirs(tmp_path / "work")  # failed: removed, not kept warm
    assert not remote_branch(origin, "stoneforge/4-task")


@pytest.mark.parametrize("status", [410, 409, 403])
async def test_a_job_the_bot_takes_back_stops_its_agent_and_reports_nothing(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None, status: int
) -> None:
    """410 (cancelled), 409 (no longer the task's running job), 403 (not this runner's)."""
    fake, url = bot
    record = tmp_path / "prompts.txt"
    fake.jobs = [planned(origin, 7, record, first=[{"sleep": 60}], retry=[])]
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", heartbeat_s=0.2,
                    claim_wait_s=1, on_event=events.append)  # fmt: skip
    started = time.monotonic()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    while not record.exists():  # the agent is running  # noqa: ASYNC110
        assert time.monotonic() - started < 20
        await asyncio.sleep(0.02)
    fake.refuse["octo/demo#7@1"] = status
    while not any(e["type"] == "job_cancelled" for e in events):  # noqa: ASYNC110
        assert time.monotonic() - started < 20
        assert not task.done()
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert fake.results == {}
    finished = [e for e in events if e["type"] == "agent_finished"]
    assert [e["reason"] for e in finished] == ["cancelled"]  # the agent was stopped, no retry
    assert len(prompts(record)) == 1
    assert not worktree_dirs(tmp_path / "work")


async def test_retry_continues_from_pushed_branch_unless_restart(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    first = job(origin, 8, {"edits": [{"path": "a.txt", "write": "one\n"}]})
    fake.jobs = [first]
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    append = {"edits": [{"path": "a.txt", "append": "two\n"}]}
    again = job(origin, 8, append, job_id="octo/demo#8@2", attempt=2)
    fresh = job(origin, 9, append, job_id="octo/demo#9@2", attempt=2, restart=True,
                branch="stoneforge/8-task")  # fmt: skip
    fake.jobs = [again]
    await run_until(runner, fake, 2)
    assert git("show", "stoneforge/8-task:a.txt", cwd=origin) == "one\ntwo\n"
    fake.jobs = [fresh]
    await run_until(runner, fake, 3)
    assert fake.results["octo/demo#9@2"]["outcome"] == "completed"
    assert git("show", "stoneforge/8-task:a.txt", cwd=origin) == "two\n"


def prompts(record: Path) -> list[str]:
    return record.read_text().split("\n=====\n")[:-1]


async def test_retry_after_no_changes_then_one_push(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    fake.jobs = [planned(origin, 10, record, first=[], retry=[write("done.txt", "yes\n")])]
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    on_event=events.append)  # fmt: skip
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#10@1"]
    assert result["outcome"] == "completed", result
    assert result["head_sha"] == remote_branch(origin, "stoneforge/10-task")
    assert git("show", "stoneforge/10-task:done.txt", cwd=origin) == "yes\n"
    assert [e["type"] for e in events].count("pushed") == 1
    log_ = result["attempt_log"]
    assert [(t["try"], t["outcome"], t["reason"]) for t in log_] == [
        (1, "failed", "no_changes"),
        (2, "completed", "success"),
    ]
    assert result["agent_seconds"] == pytest.approx(sum(t["seconds"] for t in log_), abs=0.01)
    first, second = prompts(record)
    assert "previous try" not in first
    assert "## Your previous try did not pass" in second
    assert "no changes" in second


async def test_tests_failed_after_retry_never_pushes(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    test = 'echo "checking answer"; test "$(cat answer.txt)" = 42 || { echo WRONG >&2; exit 1; }'
    fake.jobs = [
        planned(origin, 11, record, first=[write("answer.txt", "41")],
                retry=[write("answer.txt", "43")], commands={"setup": None, "test": test}),
    ]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#11@1"]
    assert (result["outcome"], result["reason"]) == ("failed", "tests_failed")
    assert "checking answer" in result["detail"]
    assert "WRONG" in result["detail"]
    assert [t["reason"] for t in result["attempt_log"]] == ["tests_failed", "tests_failed"]
    assert not remote_branch(origin, "stoneforge/11-task")
    retry_prompt = prompts(record)[1]
    assert "answer.txt" in retry_prompt
    assert "WRONG" in retry_prompt
    assert "exit code 1" in retry_prompt
    # Each try's transcript carries the runner's verdict, not the agent's own "success".
    sent = [(job, t["try"], t["outcome"], t["reason"]) for job, t in fake.transcripts]
    assert sent == [("octo/demo#11@1", n, "failed", "tests_failed") for n in (1, 2)]
    assert all("checking" not in t["text"] for _, t in fake.transcripts), "agent output only"


async def test_passing_test_command_completes_first_try(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    setup = "mkdir -p build && echo setup > build/setup.log"
    commands = {"setup": setup, "test": "test -f build/setup.log && test -f a.txt"}
    fake.jobs = [planned(origin, 12, record, first=[write("a.txt", "a\n")], retry=[],
                         commands=commands)]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#12@1"]
    assert (result["outcome"], result["reason"]) == ("completed", "success"), result
    assert len(result["attempt_log"]) == 1
    files = git("ls-tree", "-r", "--name-only", "stoneforge/12-task", cwd=origin).split()
    assert sorted(files) == [".gitignore", "README.md", "a.txt", "app/auth.py"]


async def test_agent_handoff_file_pushes_wip_without_scratch_dir(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    note = "Done: half of the parser.\nLeft: the other half.\n"
    steps = [write("parser.py", "# half\n"), write(".stoneforge/handoff.md", note)]
    fake.jobs = [planned(origin, 13, record, first=steps, retry=[],
                         commands={"setup": None, "test": "exit 1"})]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#13@1"]
    assert (result["outcome"], result["reason"]) == ("handoff", "agent_requested"), result
    assert result["note"] == note.strip()
    assert result["head_sha"] == remote_branch(origin, "stoneforge/13-task")
    files = git("ls-tree", "-r", "--name-only", "stoneforge/13-task", cwd=origin).split()
    assert "parser.py" in files
    assert not [f for f in files if f.startswith(".stoneforge")]
    message = git("log", "-1", "--format=%B", "stoneforge/13-task", cwd=origin)
    assert message.startswith("WIP: Task number 13")
    assert "Stoneforge-Handoff: agent_requested" in message
    assert len(prompts(record)) == 1  # a handoff is not retried
    assert ".stoneforge/handoff.md" in prompts(record)[0]


async def test_turn_cap_hands_off_with_a_runner_note(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STONEFORGE_CLAUDE_BIN", str(FAKE_CLAUDE))
    fake, url = bot
    fake.jobs = [{**job(origin, 14, {}), "body": "Refactor. [[fake:max_turns]]",
                  "agent": {"name": "claude", "model": None}}]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#14@1"]
    assert (result["outcome"], result["reason"]) == ("handoff", "max_turns"), result
    assert result["head_sha"] is None  # nothing to push
    assert not remote_branch(origin, "stoneforge/14-task")
    assert "max_turns" in result["note"]
    assert "Files changed" in result["note"]


async def test_rate_limited_pauses_the_agent_in_later_claims(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STONEFORGE_CLAUDE_BIN", str(FAKE_CLAUDE))
    fake, url = bot
    fake.jobs = [{**job(origin, 15, {}), "body": "Do it. [[fake:subscription_limit]]",
                  "agent": {"name": "claude", "model": None}}]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    labels=["linux", "gpu"], capacity=5)  # fmt: skip
    before = time.time()
    await run_until(runner, fake, 1)
    fake.claim_bodies.clear()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    deadline = time.monotonic() + 10
    while not fake.claim_bodies and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)

    result = fake.results["octo/demo#15@1"]
    assert result["outcome"] == "rate_limited", result
    assert result["agent"] == "claude"
    assert before + 3500 < result["retry_at"] < time.time() + 3700
    assert fake.claim_bodies, "the runner claimed nothing after the rate limit"
    body = fake.claim_bodies[0]
    assert "claude" in body["unavailable_agents"], "rate limited: paused"
    assert "script" not in body["unavailable_agents"]
    assert body["labels"] == ["linux", "gpu"]
    assert body["capacity"] == 5
    assert not remote_branch(origin, "stoneforge/15-task")


async def test_stop_mid_job_hands_off_pushed_wip(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    steps = [write("wip.txt", "started\n"), {"sleep": 60}]
    fake.jobs = [planned(origin, 16, record, first=steps, retry=[])]
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    heartbeat_s=0.2, shutdown_grace_s=0.5)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    deadline = time.monotonic() + 20
    while not any((w / "wip.txt").exists() for w in worktree_dirs(tmp_path / "work")):
        assert time.monotonic() < deadline
        assert not task.done()
        await asyncio.sleep(0.05)
    stopped_at = time.monotonic()
    stop.set()  # what SIGTERM does in `stoneforge runner`
    await asyncio.wait_for(task, 15)
    assert time.monotonic() - stopped_at < 10

    result = fake.results["octo/demo#16@1"]  # reported before run() returned
    assert (result["outcome"], result["reason"]) == ("handoff", "runner_shutdown"), result
    assert result["head_sha"] == remote_branch(origin, "stoneforge/16-task")
    assert git("show", "stoneforge/16-task:wip.txt", cwd=origin) == "started\n"
    assert "wip.txt" in result["note"]
    assert len(prompts(record)) == 1


async def test_setup_failure_is_reported_without_running_the_agent(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path
) -> None:
    fake, url = bot
    commands = {"setup": "echo installing; echo boom >&2; exit 3", "test": None}
    fake.jobs = [job(origin, 17, {"edits": [{"path": "x", "write": "x"}]}, commands=commands)]
    events: list[dict[str, Any]] = []
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    on_event=events.append)  # fmt: skip
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#17@1"]
    assert (result["outcome"], result["reason"]) == ("failed", "setup_failed"), result
    assert "exit code 3" in result["detail"]
    assert "boom" in result["detail"]
    assert not [e for e in events if e["type"] == "agent_finished"]
    assert not remote_branch(origin, "stoneforge/17-task")


def recording(monkeypatch: pytest.MonkeyPatch, cls: type[Any], fake: Path, log: Path) -> None:
    """The real adapter `cls`, running its fake CLI, which logs every call to `log`."""

    class Recording(cls):  # type: ignore[misc,valid-type]
        def build(self, req: RunRequest) -> Invocation:
            inv: Invocation = super().build(req)
            inv.env[f"FAKE_{cls.name.upper()}_ARGV_LOG"] = str(log)
            return inv

    monkeypatch.setitem(runner.agents._FACTORIES, cls.name, lambda: Recording(binary=str(fake)))


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def budget(call: dict[str, Any]) -> str:
    argv = call["argv"]
    return str(argv[argv.index("--max-budget-usd") + 1])


def usage(inp: int, out: int, cost: float | None) -> dict[str, Any]:
    return {"input_tokens": inp, "output_tokens": out, "cost_usd": cost, "cost_note": None}


async def test_retry_resumes_the_claude_session_and_counts_its_spend_once(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.jsonl"
    recording(monkeypatch, ClaudeAdapter, FAKE_CLAUDE, log)
    fake, url = bot
    fake.jobs = [{**job(origin, 20, {}), "body": "Add done.txt. [[fake:resume_no_changes]]",
                  "agent": {"name": "claude", "model": None}, "budget_usd": 0.004}]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#20@1"]
    assert (result["outcome"], result["reason"]) == ("completed", "success"), result
    assert git("show", "stoneforge/20-task:done.txt", cwd=origin) == "done\n"
    tries = result["attempt_log"]
    assert [(t["try"], t["reason"], t["resumed"]) for t in tries] == [
        (1, "no_changes", False),
        (2, "success", True),
    ]
    session = tries[0]["session_id"]
    assert session
    assert tries[1]["session_id"] == session
    first, second = calls(log)
    assert "--resume" not in first["argv"]
    assert second["argv"][second["argv"].index("--resume") + 1] == session
    # The budget is the task's: the resumed try may spend what is left ($0.003). Claude caps
    # the session's running cost, which already counts the first try's $0.001.
    assert [budget(c) for c in (first, second)] == ["0.004", "0.004"]
    assert "Add done.txt" in first["prompt"]
    assert "Add done.txt" not in second["prompt"]  # the session has the task: only the news
    assert "## Your previous try did not pass" in second["prompt"]
    assert "no changes" in second["prompt"]
    # The fake spends 10 tokens in, 20 out and $0.001 a turn: 1 turn, then 2. Claude reports a
    # resumed session's running totals (30 / 60 / $0.003 after try 2): counted once, not twice.
    assert [t["usage"] for t in tries] == [usage(10, 20, 0.001), usage(20, 40, 0.002)]
    assert result["usage"] == usage(30, 60, 0.003)
    assert not list((tmp_path / "work" / "homes").glob("*"))  # the job's HOME went with it


async def test_retry_resumes_the_codex_thread_after_failed_tests(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.jsonl"
    recording(monkeypatch, CodexAdapter, FAKE_CODEX, log)
    fake, url = bot
    test = 'test "$(cat answer.txt)" = 42 || { echo "the answer was $(cat answer.txt)"; exit 1; }'
    fake.jobs = [{**job(origin, 21, {}), "body": "Answer it. [[fake:resume_tests_failed]]",
                  "agent": {"name": "codex", "model": None},
                  "commands": {"setup": None, "test": test}}]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#21@1"]
    assert (result["outcome"], result["reason"]) == ("completed", "success"), result
    assert git("show", "stoneforge/21-task:answer.txt", cwd=origin) == "42"
    tries = result["attempt_log"]
    assert [(t["reason"], t["resumed"]) for t in tries] == [
        ("tests_failed", False),
        ("success", True),
    ]
    thread = tries[0]["session_id"]
    first, second = calls(log)
    assert "resume" not in first["argv"]
    assert second["argv"][-3:] == ["resume", thread, "-"]
    assert "the answer was 41" in second["prompt"]
    assert "exit code 1" in second["prompt"]
    assert "Answer it." not in second["prompt"]
    # 2 items a turn at 1200 in (800 of them cached) / 40 out each; codex reports the thread's
    # totals (4800 / 160) and counts cached input in its input (runner.agents.codex: ours not).
    # Codex reports no cost: the runner prices its tokens (a model the table does not know
    # counts at the highest price, and says so).
    costs = [t["usage"].pop("cost_usd") for t in tries]
    assert costs[0] == costs[1] > 0
    assert {t["usage"].pop("cost_note") for t in tries} == {result["usage"]["cost_note"]}
    assert "estimated from tokens" in result["usage"]["cost_note"]
    assert [(t["usage"]["input_tokens"], t["usage"]["output_tokens"]) for t in tries] == [
        (800, 80),
        (800, 80),
    ]
    assert result["usage"]["cost_usd"] == round(sum(costs), 6)


async def test_a_resume_that_fails_at_once_falls_back_to_a_fresh_agent(
    bot: tuple[Bot, str],
    origin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    log = tmp_path / "calls.jsonl"
    recording(monkeypatch, ClaudeAdapter, FAKE_CLAUDE, log)
    fake, url = bot
    # The fake saves no session for this scenario, so `--resume` finds nothing.
    fake.jobs = [{**job(origin, 22, {}), "body": "Change it. [[fake:forgetful_no_changes]]",
                  "agent": {"name": "claude", "model": None}, "budget_usd": 0.005}]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#22@1"]
    assert (result["outcome"], result["reason"]) == ("failed", "no_changes"), result
    first, resumed, fresh = calls(log)
    session = result["attempt_log"][0]["session_id"]
    assert resumed["argv"][resumed["argv"].index("--resume") + 1] == session
    assert "--resume" not in fresh["argv"]
    # The fresh session gets what the first try left of the task's budget, no more.
    assert [budget(c) for c in (first, resumed, fresh)] == ["0.005", "0.005", "0.004"]
    assert "Change it." in fresh["prompt"]  # the whole prompt again, with the failure
    assert "## Your previous try did not pass" in fresh["prompt"]
    second = result["attempt_log"][1]
    assert second["try"] == 2
    assert not second["resumed"]
    assert second["session_id"] not in (None, session)
    assert "resume_failed" in caplog.text
    # One turn each for the two fresh runs; the failed resume spent nothing.
    assert second["usage"] == usage(10, 20, 0.001)
    assert result["usage"] == usage(20, 40, 0.002)


async def test_a_spent_budget_ends_the_job_before_another_run(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry is not run when the first try spent the budget: the job hands off (the bot
    then asks a person), and a job sent with nothing left runs no agent at all."""
    log = tmp_path / "calls.jsonl"
    recording(monkeypatch, ClaudeAdapter, FAKE_CLAUDE, log)
    fake, url = bot
    claude = {"name": "claude", "model": None}
    fake.jobs = [
        {**job(origin, 23, {}), "body": "Add done.txt. [[fake:resume_no_changes]]",
         "agent": claude, "budget_usd": 0.001},
        {**job(origin, 24, {}), "body": "Anything.", "agent": claude, "budget_usd": 0.0},
    ]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1)
    await run_until(runner, fake, 2)

    spent, empty = fake.results["octo/demo#23@1"], fake.results["octo/demo#24@1"]
    assert (spent["outcome"], spent["reason"]) == ("handoff", "budget"), spent
    assert [(t["try"], t["reason"]) for t in spent["attempt_log"]] == [(1, "no_changes")]
    assert spent["usage"] == usage(10, 20, 0.001)
    assert (empty["outcome"], empty["reason"]) == ("failed", "budget"), empty
    assert "budget is spent" in empty["detail"]
    assert len(calls(log)) == 1  # the first job's one run; none for the second


def test_prune_logs_keeps_the_newest_job_folders(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for age, name in enumerate(["newest", "middle", "oldest"]):
        folder = root / name / "try1-run1"
        folder.mkdir(parents=True)
        (folder / "stdout.jsonl").write_text("{}\n")
        stamp = time.time() - 100 * age
        os.utime(root / name, (stamp, stamp))
    assert prune_logs(root, 2) == [root / "oldest"]
    assert sorted(p.name for p in root.iterdir()) == ["middle", "newest"]
    assert prune_logs(tmp_path / "missing", 2) == []


async def test_a_prefetch_hint_fetches_the_moved_base_and_the_next_job_skips_its_fetch(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake, url = bot
    seed = tmp_path / "seed"
    (seed / "moved.txt").write_text("the base moved\n")
    git("add", "--all", cwd=seed)
    git("commit", "--quiet", "-m", "moved", cwd=seed)
    git("push", "--quiet", str(origin), "main", cwd=seed)
    tip = git("rev-parse", "main", cwd=origin).strip()
    hint = {"repo": "octo/demo", "clone_url": origin.as_uri(), "base": "main",
            "base_sha": tip, "token": INSTALLATION_TOKEN}  # fmt: skip
    fake.jobs = [{"prefetch": hint}]
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    retry_base_s=0.05)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    mirror = tmp_path / "work" / "mirrors" / "octo" / "demo.git"
    deadline = time.monotonic() + 20

    def fetched() -> str:
        if not (mirror / "HEAD").exists():
            return ""
        try:  # the mirror may be half made: `git init` is still running
            return git("for-each-ref", "--format=%(objectname)", "refs/remotes/origin/main",
                       cwd=mirror).strip()  # fmt: skip
        except subprocess.CalledProcessError:
            return ""

    while fetched() != tip and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert fetched() == tip, "the hint made the idle runner fetch the new base"
    assert all(body["prefetch"] is True for body in fake.claim_bodies)
    assert len(fake.claim_bodies) >= 2, "the worker went back to claiming"

    # The next job on that base finds it in the mirror: no fetch on its critical path.
    fake.jobs = [job(origin, 5, {"edits": [{"path": "x.txt", "write": "x\n"}]}, base_sha=tip)]
    while "octo/demo#5@1" not in fake.results and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert fake.results["octo/demo#5@1"]["outcome"] == "completed"
    assert INSTALLATION_TOKEN not in caplog.text
    assert _state_for(mirror).started.get("main") == 1, "only the prefetch fetched main"


async def test_a_silent_agent_is_nudged_once_and_then_finishes(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    fake.jobs = [planned(origin, 30, record, first=[{"sleep": 30}],
                         retry=[write("done.txt", "yes\n")])]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    stall_timeout_s=0.5)  # fmt: skip
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#30@1"]
    assert result["outcome"] == "completed", result
    assert git("show", "stoneforge/30-task:done.txt", cwd=origin) == "yes\n"
    # The nudge is an extra try: the agent still had its retry after it.
    assert [(t["try"], t["outcome"], t["reason"]) for t in result["attempt_log"]] == [
        (1, "failed", "stalled"),
        (1, "completed", "success"),
    ]
    nudge = prompts(record)[1]
    assert "no output for 1 minute(s)" in nudge
    assert ".stoneforge" in nudge or "handoff" in nudge.lower()


@pytest.mark.parametrize("changes", [False, True])
async def test_an_agent_silent_again_after_its_nudge_ends_the_job(
    bot: tuple[Bot, str], origin: Path, tmp_path: Path, fake_agent: None, changes: bool
) -> None:
    fake, url = bot
    record = tmp_path / "prompts.txt"
    first = [write("half.txt", "wip\n")] if changes else []
    fake.jobs = [planned(origin, 31, record, first=[*first, {"sleep": 30}],
                         retry=[{"sleep": 30}])]  # fmt: skip
    runner = Runner(url, TOKEN, workers=1, work_dir=tmp_path / "work", claim_wait_s=1,
                    stall_timeout_s=0.5)  # fmt: skip
    await run_until(runner, fake, 1)

    result = fake.results["octo/demo#31@1"]
    assert len(prompts(record)) == 2, "one nudge, then no third run"
    if changes:  # the work so far is pushed with the handoff, for the person who takes over
        assert (result["outcome"], result["reason"]) == ("handoff", "stalled")
        assert git("show", "stoneforge/31-task:half.txt", cwd=origin) == "wip\n"
    else:
        assert (result["outcome"], result["reason"]) == ("failed", "stalled")
        assert "after a nudge" in result["detail"]
        assert not remote_branch(origin, "stoneforge/31-task")
