"""Claude Code (the pinned ``@anthropic-ai/claude-code``) through ``ClaudeAdapter`` and the runner's
supervisor, against a scripted Anthropic Messages server on loopback (``tests.models.anthropic``).

Credentials go in as the runner would pass them: ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY``
in the request's ``extra_env`` (the adapter lets them through as the CLI's own secrets). Every run
sets ``CLAUDE_CODE_MAX_RETRIES=0`` unless a test is about retrying, so a failure ends at once.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from runner.agents.base import Outcome, RunRequest
from runner.agents.claude import ClaudeAdapter
from runner.agents.pricing import estimate
from runner.usage import UsageLedger
from tests.conformance.clis import require
from tests.conformance.harness import Run, git_workdir, run_cli
from tests.models import netwatch
from tests.models.anthropic import OVERFLOW_TOKENS, MessagesServer, conversation
from tests.models.scenario import (
    Dialect,
    Overflow,
    RateLimit,
    Say,
    Script,
    ServerError,
    Shell,
    Stall,
    Tool,
    Turn,
    Unauthorized,
    Write,
    fail,
    reply,
)

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

MODEL = "claude-sonnet-4-5"  # priced in the CLI's table and in runner/agents/prices.json

CLAUDE = Dialect(
    write=lambda path, content: ("Write", {"file_path": path, "content": content}),
    shell=lambda command: ("Bash", {"command": command, "description": "run it"}),
)


COMPACT_ASK = "Respond with TEXT ONLY"  # how the CLI's compaction request begins its ask
SUMMARY = "<summary>Ran echo; the task goes on.</summary>"


def side_call(body: dict[str, Any]) -> str | None:
    """The CLI's requests that are not the agent's loop: any request without tools (a title),
    and a compaction (its summary request carries the tools, but asks for text only)."""
    if not body.get("tools"):
        return "Side answer"
    last = (body.get("messages") or [{}])[-1]
    parts = last.get("content") if isinstance(last.get("content"), list) else []
    if any(COMPACT_ASK in str(p.get("text", "")) for p in parts if isinstance(p, dict)):
        return SUMMARY
    return None


class Rig:
    """One test's worktree, HOME (kept between runs, for resume) and server."""

    def __init__(self, root: Path, turns: list[Turn]) -> None:
        self.root = root
        self.workdir = git_workdir(root)
        self.script = Script(turns, CLAUDE)
        self.server = MessagesServer(self.script, is_side_call=side_call)

    def request(self, prompt: str = "Make the tests pass.", **kw: Any) -> RunRequest:
        env = {
            "ANTHROPIC_BASE_URL": self.server.url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **kw.pop("env", {}),
        }
        kw.setdefault("max_turns", 10)
        return RunRequest("octo/demo#1@1", prompt, self.workdir, extra_env=env, **kw)

    async def run(self, req: RunRequest, *, watch: bool = False, stall_s: float = 30) -> Run:
        if not watch:
            adapter = ClaudeAdapter(str(require("claude")))
            return await run_cli(adapter, req, home=self.root / "home", stall_timeout_s=stall_s)
        log = self.root / "net.log"
        wrapped = netwatch.wrap(require("claude"), log, self.root / "claude-watched")
        return await run_cli(
            ClaudeAdapter(str(wrapped)),
            req,
            home=self.root / "home",
            netlog=log,
            allowed_ports={self.server.port},
            stall_timeout_s=stall_s,
        )

    def bodies(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.server.requests if r.path.startswith("/v1/messages")]


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of a Messages request's last user message."""
    last = body["messages"][-1]
    assert last["role"] == "user"
    return [b for b in last["content"] if b.get("type") == "tool_result"]


def texts(body: dict[str, Any], role: str) -> list[str]:
    out = []
    for message in body["messages"]:
        if message["role"] != role:
            continue
        content = message["content"]
        parts = [content] if isinstance(content, str) else content
        out += [p if isinstance(p, str) else p.get("text", "") for p in parts]
    return out


@pytest.fixture
def rig_for(tmp_path: Path):
    rigs: list[Rig] = []

    def make(*turns: Turn) -> Rig:
        rig = Rig(tmp_path, list(turns))
        rig.server.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.server.stop()


async def test_edit_run_tests_and_finish_under_the_network_watch(rig_for) -> None:
    if not netwatch.available():
        pytest.fail("strace is needed for the network watch (apt-get install strace)")
    rig = rig_for()
    wd = rig.workdir
    rig.script.turns += [
        reply(
            Say("Adding the function and its test."),
            Write(str(wd / "calc.py"), "def add(a, b):\n    return a + b\n"),
            Write(str(wd / "test_calc.py"), "from calc import add\nassert add(2, 3) == 5\n"),
            Shell("python3 test_calc.py && echo TESTS-PASSED"),
            input_tokens=1500,
            output_tokens=60,
        ),
        reply(Say("All tests pass."), input_tokens=1700, output_tokens=20),
    ]
    session = str(uuid.uuid4())
    run = await rig.run(rig.request(session_id=session, model=MODEL), watch=True)

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.final_text == "All tests pass."
    assert result.exit_code == 0
    assert (wd / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert rig.script.finished
    assert rig.script.extra_calls == 0
    # The shell really ran in the worktree: its output went back to the model.
    assert conversation(rig.bodies()[1]) == ("Make the tests pass.", 3)  # reminders left out
    results = tool_results(rig.bodies()[1])
    assert len(results) == 3
    assert "TESTS-PASSED" in str(results[2]["content"])
    # Tokens as the server reported them, summed over both calls; the cost from the CLI's own
    # price table agrees with the runner's (runner/agents/prices.json).
    assert (result.usage.input_tokens, result.usage.output_tokens) == (3200, 80)
    assert result.usage.cost_usd == pytest.approx(estimate(MODEL, result.usage).cost_usd)
    assert result.usage.context_tokens == 1700
    assert result.model == MODEL
    assert {b["model"] for b in rig.bodies()} == {MODEL}
    # The id the runner chose is the session's, and the one the CLI sends upstream.
    assert result.session_id == session
    assert rig.server.requests[0].headers["x-claude-code-session-id"] == session
    assert result.num_turns is not None
    assert result.num_turns >= 2
    # Nothing but the model server: no side calls, no unknown endpoints, no other connection.
    assert rig.server.side_calls == []
    assert rig.server.unknown == []
    assert netwatch.connections(rig.root / "net.log"), "the watch saw no connection at all"
    assert run.strays == []
    kinds = [e.kind for e in run.events]
    assert kinds.count("tool_call") == 3
    assert kinds.count("tool_result") == 3


@pytest.mark.parametrize(
    ("permissions", "denied", "said"),
    [
        # read_only -> plan mode: no writes at all.
        ("read_only", "Write", "plan mode"),
        # workspace_write -> dontAsk: a tool outside the allowlist is denied.
        ("workspace_write", "WebFetch", "don't ask mode"),
    ],
)
async def test_permission_mode_denies_a_tool(
    rig_for, permissions: str, denied: str, said: str
) -> None:
    rig = rig_for()
    target = rig.workdir / "x.txt"
    call = (
        Write(str(target), "nope\n")
        if denied == "Write"
        else Tool("WebFetch", {"url": "https://example.com/", "prompt": "read it"})
    )
    rig.script.turns += [reply(call), reply(Say("Could not do that."))]
    run = await rig.run(rig.request(permissions=permissions))

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert not target.exists()
    (result,) = tool_results(rig.bodies()[1])
    assert result["is_error"] is True
    assert said in str(result["content"])
    assert any(e.kind == "warning" and e.data["message"] == f"denied {denied}" for e in run.events)


async def test_full_unattended_as_root_is_refused_by_the_cli(rig_for) -> None:
    """bypassPermissions refuses root outside a sandbox it recognises; the adapter does not
    claim one (IS_SANDBOX), so the run fails before any request, with the CLI's words."""
    rig = rig_for(reply(Write("y.txt", "y\n")), reply(Say("done")))
    run = await rig.run(rig.request(permissions="full_unattended"))
    if os.geteuid() != 0:
        assert run.result.outcome is Outcome.COMPLETED
        return
    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "crash")
    assert "cannot be used with root/sudo privileges" in (run.result.detail or "")
    assert rig.server.requests == []


async def test_rate_limit_with_a_long_retry_after_stops_at_once(rig_for) -> None:
    """A retry-after of an hour: even with its default retries the CLI gives up at once (it
    retries only waits it deems short). It does not report the wait: no retry_at."""
    rig = rig_for(fail(RateLimit(retry_after_s=3600)))
    req = rig.request()
    del req.extra_env["CLAUDE_CODE_MAX_RETRIES"]
    run = await rig.run(req)

    assert (run.result.outcome, run.result.reason) == (Outcome.RATE_LIMITED, "quota")
    assert run.result.retry_at is None
    assert run.result.exit_code == 1
    assert len(rig.server.requests) == 1
    assert "api_error_status=429" in (run.result.detail or "")


async def test_rate_limit_with_a_short_retry_after_is_waited_out(rig_for) -> None:
    """A 20 s retry-after: the CLI announces the wait (system/api_retry), stays silent for it and
    retries; the adapter's liveness hint keeps a 12 s stall timer from killing it meanwhile (12 s:
    longer than the CLI's silent start on two loaded cores, which a 4 s timer once cut short)."""
    rig = rig_for(fail(RateLimit(retry_after_s=20)), reply(Say("Recovered.")))
    req = rig.request()
    del req.extra_env["CLAUDE_CODE_MAX_RETRIES"]
    run = await rig.run(req, stall_s=12.0)

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert run.result.final_text == "Recovered."
    assert len(rig.server.requests) == 2
    (retry,) = [e for e in run.events if e.kind == "retry"]
    assert retry.data["error"] == "rate_limit"
    assert isinstance(retry.raw, dict)
    assert retry.raw["retry_delay_ms"] >= 20000


async def test_unauthorized_is_an_auth_failure(rig_for) -> None:
    rig = rig_for(fail(Unauthorized()))
    run = await rig.run(rig.request())

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "auth")
    assert run.result.exit_code == 1
    assert rig.server.requests[0].headers["x-api-key"] == "dummy"
    assert "Invalid API key" in (run.result.detail or "")


async def test_context_overflow_hands_off(rig_for) -> None:
    rig = rig_for(fail(Overflow()))
    run = await rig.run(rig.request())

    assert (run.result.outcome, run.result.reason) == (Outcome.HANDOFF_NEEDED, "prompt_too_long")
    assert "terminal_reason=prompt_too_long" in (run.result.detail or "")
    assert f"{OVERFLOW_TOKENS}" in (run.result.detail or "")


async def test_overflow_mid_task_is_compacted_and_the_task_goes_on(rig_for) -> None:
    """The CLI's real answer to an overflow once there is history: it compacts (a summary
    request, answered here as a side call), then resends and finishes."""
    rig = rig_for(reply(Shell("echo one")), fail(Overflow()), reply(Say("Done after compacting.")))
    run = await rig.run(rig.request())

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert run.result.final_text == "Done after compacting."
    assert rig.script.finished
    assert rig.script.extra_calls == 0
    assert rig.server.side_calls
    assert any(e.kind == "compaction" for e in run.events)
    first_user = texts(rig.bodies()[-1], "user")
    assert any("Ran echo; the task goes on." in t for t in first_user)


@pytest.mark.parametrize("status", [500, 529])
async def test_server_errors_are_retried_then_fail(rig_for, status: int) -> None:
    rig = rig_for(fail(ServerError(status)), fail(ServerError(status)))
    run = await rig.run(rig.request(env={"CLAUDE_CODE_MAX_RETRIES": "1"}))

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "crash")
    assert len(rig.server.requests) == 2
    assert f"api_error_status={status}" in (run.result.detail or "")


async def test_a_stalled_stream_is_killed(rig_for) -> None:
    rig = rig_for(reply(Stall(120), Say("too late")))
    started = time.monotonic()
    # 12 s: longer than the CLI's silent start on two loaded cores (5 s once cut it short).
    run = await rig.run(rig.request(), stall_s=12.0)

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "stalled")
    assert time.monotonic() - started < 60
    # Killed while waiting on the model's silent stream, after the session began.
    assert len(rig.server.requests) == 1
    assert run.result.session_id


async def test_resume_continues_the_conversation(rig_for) -> None:
    rig = rig_for(
        reply(Say("Wrote it."), Write("notes.txt", "first\n")),
        reply(Say("First answer.")),
        reply(Say("Second answer.")),
        fail(RateLimit(retry_after_s=3600)),
    )
    session = str(uuid.uuid4())
    first = await rig.run(rig.request("First task: write notes.", session_id=session))
    assert first.result.outcome is Outcome.COMPLETED, first.result.detail

    second = await rig.run(rig.request("Second task: go on.", resume_session=session))
    assert (second.result.outcome, second.result.reason) == (Outcome.COMPLETED, "success")
    assert second.result.session_id == session
    assert second.result.final_text == "Second answer."
    body = rig.bodies()[-1]
    users = texts(body, "user")
    assert users.index("First task: write notes.") < users.index("Second task: go on.")
    assert {"Wrote it.", "First answer."} <= set(texts(body, "assistant"))

    third = await rig.run(rig.request("Third task.", resume_session=session))
    assert third.result.outcome is Outcome.RATE_LIMITED

    # The CLI reports the session's running totals (ClaudeAdapter.cumulative_usage): the
    # runner's ledger turns them into what each run spent, never counting a token twice.
    assert (second.result.usage.input_tokens, second.result.usage.output_tokens) == (3600, 120)
    ledger = UsageLedger()
    spent = [
        ledger.charge(session, r.result.usage, cumulative=True) for r in (first, second, third)
    ]
    assert [u.input_tokens for u in spent] == [2400, 1200, 0]
    first_cost, second_cost = first.result.usage.cost_usd, spent[1].cost_usd
    assert first_cost
    assert second_cost
    assert second_cost == pytest.approx(first_cost / 2)
    assert not spent[2].cost_usd


async def test_resume_of_an_unknown_session_fails_as_resume_failed(rig_for) -> None:
    rig = rig_for(reply(Say("never")))
    run = await rig.run(rig.request(resume_session=str(uuid.uuid4())))

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "resume_failed")
    assert rig.server.requests == []


async def test_budget_cap_hands_off(rig_for) -> None:
    rig = rig_for(
        reply(Shell("echo one"), input_tokens=200_000, output_tokens=1000),
        reply(Say("never reached")),
    )
    run = await rig.run(rig.request(budget_usd=0.5, model=MODEL))

    # The CLI checks its cap offline, against its own prices: $3 + $15 per million at sonnet-4-5.
    assert (run.result.outcome, run.result.reason) == (Outcome.HANDOFF_NEEDED, "budget")
    assert run.result.usage.cost_usd == pytest.approx(0.615)
    assert "Reached maximum budget ($0.5)" in (run.result.detail or "")
    assert len(rig.server.requests) == 1


async def test_turn_cap_hands_off(rig_for) -> None:
    rig = rig_for(reply(Shell("echo one")), reply(Shell("echo two")), reply(Say("never")))
    run = await rig.run(rig.request(max_turns=1))

    assert (run.result.outcome, run.result.reason) == (Outcome.HANDOFF_NEEDED, "max_turns")
    assert len(rig.server.requests) == 1


async def test_a_plan_job_writes_its_plan_outside_the_worktree_through_add_dir(
    rig_for, tmp_path: Path
) -> None:
    # A plan job's file lives outside the worktree (runner/planning.py); the runner names its
    # folder in extra_dirs, which the adapter passes as --add-dir. (Seen here: under the same
    # permission mode the CLI also writes there without --add-dir: its permission mode does not
    # confine writes to the worktree, which only a sandbox can; see issue 14.)
    import json

    from bot.core.plan import Plan, validate_plan

    folder = tmp_path / "plans" / "job-1"
    folder.mkdir(parents=True)
    plan_file = folder / "plan.json"
    plan = {"summary": "two steps", "tasks": [{"title": "a"}, {"title": "b", "blockers": [0]}]}
    turns = [
        reply(Write(str(plan_file), json.dumps(plan))),
        reply(Say("The plan is written.")),
    ]
    rig = rig_for(*turns)
    run = await rig.run(
        rig.request("Write the plan.", env={"STONEFORGE_PLAN_FILE": str(plan_file)},
                    extra_dirs=[folder])
    )  # fmt: skip
    assert run.result.outcome == Outcome.COMPLETED, run.result.detail
    assert isinstance(validate_plan(plan_file.read_text()), Plan)
    assert not any(p.name == "plan.json" for p in rig.workdir.rglob("*"))
