"""The opencode adapter against the real pinned `opencode run --format json` and a scripted Chat
Completions server.

Each test runs the CLI through the runner's supervisor (tests.conformance.harness) with a private
HOME, a `local` provider in `OPENCODE_CONFIG_CONTENT` pointing at the server (with prices, so
opencode reports cost), and under the network watch: the CLI may reach the model server and
nothing else. OpenCode's retry count is fixed (five retries); the rate-limit test keeps them fast
with `retry-after: 1`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.core.plan import Plan, validate_plan
from runner.agents.base import Outcome, RunRequest
from runner.agents.opencode import OpenCodeAdapter
from tests.conformance.harness import Run, git_workdir, run_cli, watched
from tests.models import netwatch
from tests.models.openai_chat import ChatCompletionsServer
from tests.models.scenario import (
    Dialect,
    Overflow,
    RateLimit,
    Say,
    Script,
    Shell,
    Stall,
    Turn,
    Unauthorized,
    Write,
    fail,
    reply,
)
from tests.models.server import Recorded

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

MODEL = "local/test-model"
OPENCODE = Dialect(
    write=lambda path, content: ("write", {"filePath": path, "content": content}),
    shell=lambda command: ("bash", {"command": command, "description": "run it"}),
)


def title_call(body: dict[str, Any]) -> str | None:
    """OpenCode's title generator (a side call to `small_model`); compactions play the script."""
    system = json.dumps((body.get("messages") or [{}])[0])
    return "A title" if "title generator" in system else None


def config(server: ChatCompletionsServer) -> str:
    local = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Local",
        "options": {"baseURL": f"{server.url}/v1", "apiKey": "local-key"},
        "models": {
            "test-model": {
                "name": "Test",
                "cost": {"input": 3, "output": 15, "cache_read": 0.3},
                "limit": {"context": 200000, "output": 8192},
            }
        },
    }
    return json.dumps(
        {
            "provider": {"local": local},
            "model": MODEL,
            "small_model": MODEL,
            "autoupdate": False,
            "share": "disabled",
        }
    )


@dataclass
class OpenCode:
    """One test's CLI: the wrapped binary, a worktree, a HOME kept across runs (resume)."""

    root: Path
    workdir: Path
    binary: Path

    @property
    def netlog(self) -> Path:
        return self.root / "net.log"

    async def run(
        self,
        server: ChatCompletionsServer,
        prompt: str,
        *,
        stall_timeout_s: float = 45.0,
        **request: Any,
    ) -> Run:
        req = RunRequest(
            task_id="t", prompt=prompt, workdir=self.workdir,
            extra_env={"OPENCODE_CONFIG_CONTENT": config(server)}, **request,
        )  # fmt: skip
        return await run_cli(
            OpenCodeAdapter(str(self.binary)),
            req,
            home=self.root / "home",
            netlog=self.netlog,
            allowed_ports={server.port},
            timeout_s=90,
            stall_timeout_s=stall_timeout_s,
            kill_grace_s=2,
        )


@pytest.fixture
def opencode(tmp_path: Path) -> OpenCode:
    wrapped = watched("opencode", tmp_path)
    return OpenCode(tmp_path, git_workdir(tmp_path), wrapped)


def serve(served: list[ChatCompletionsServer], *turns: Turn) -> ChatCompletionsServer:
    server = ChatCompletionsServer(Script(list(turns), OPENCODE), is_side_call=title_call)
    server.start()
    served.append(server)
    return server


def main_calls(server: ChatCompletionsServer) -> list[Recorded]:
    return [r for r in server.requests if r not in server.side_calls]


def tool_results(request: Recorded) -> list[str]:
    messages = request.json().get("messages") or []
    return [str(m.get("content")) for m in messages if m.get("role") == "tool"]


async def test_edit_and_test_lands_in_worktree_with_tokens_and_cost(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    code = "def add(a, b):\n    return a + b\n"
    check = "python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo passed > tests.log"
    server = serve(
        served,
        reply(
            Say("Adding calc.py."), Write(str(opencode.workdir / "calc.py"), code),
            input_tokens=3000, cached_tokens=1000, output_tokens=200,
        ),
        reply(Shell(check), input_tokens=3200, cached_tokens=2900, output_tokens=20),
        reply(Say("Done: calc.add works."), input_tokens=3500, output_tokens=30),
    )  # fmt: skip

    run = await opencode.run(server, "Add calc.add and check it.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert (opencode.workdir / "calc.py").read_text() == code
    assert (opencode.workdir / "tests.log").read_text() == "passed\n"
    assert result.final_text == "Done: calc.add works."
    assert result.session_id
    assert result.session_id.startswith("ses_")
    assert result.exit_code == 0
    calls = main_calls(server)
    assert len(calls) == 3
    assert len(server.side_calls) == 1  # the title
    assert tool_results(calls[2])[-1] == "(no output)"  # the check's result went back
    assert calls[0].headers["authorization"] == "Bearer local-key"
    assert calls[0].json()["messages"][-1]["content"] == "Add calc.add and check it."
    # Tokens: opencode's `input` is the uncached part, the cached count apart (AI SDK's split).
    usage = result.usage
    assert (usage.input_tokens, usage.cache_read) == (2000 + 300 + 3500, 1000 + 2900)
    assert usage.output_tokens == 250
    assert result.num_turns == 3
    # Cost, as opencode computes it from the config's prices (USD per million tokens).
    expected = (5800 * 3 + 3900 * 0.3 + 250 * 15) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert [e.data["name"] for e in run.events if e.kind == "tool_call"] == ["write", "bash"]
    assert run.strays == []
    assert netwatch.connections(opencode.netlog)  # the watch did see the model server
    # The plugin install opencode attempts on every start was skipped (the adapter's seed).
    config_dir = opencode.root / "home/.config/opencode"
    assert [p.name for p in (config_dir / "node_modules").iterdir()] == [".keep"]
    log = "".join(p.read_text() for p in (opencode.root / "home").rglob("opencode*.log"))
    assert "dependency install" not in log
    assert sorted(p.name for p in opencode.workdir.iterdir()) == [
        ".git", "README.md", "__pycache__", "calc.py", "tests.log",
    ]  # fmt: skip


async def test_read_only_does_not_offer_the_write_tool(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(
        served,
        reply(Write(str(opencode.workdir / "denied.txt"), "no")),
        reply(Say("I may not write files here.")),
    )

    run = await opencode.run(server, "Write denied.txt.", permissions="read_only")

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert not (opencode.workdir / "denied.txt").exists()
    calls = main_calls(server)
    offered = {t["function"]["name"] for t in calls[0].json()["tools"]}
    assert "read" in offered
    assert not offered & {"write", "edit", "bash"}
    assert "unavailable tool 'write'" in tool_results(calls[1])[0]
    # OpenCode runs such a call as its `invalid` tool: an error result for the runner.
    assert [e.data["name"] for e in run.events if e.kind == "tool_call"] == ["invalid"]
    assert [e.data["is_error"] for e in run.events if e.kind == "tool_result"] == [True]
    assert run.strays == []


async def test_429_is_rate_limited_with_retry_at(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, *[fail(RateLimit(retry_after_s=1))] * 6)

    before = datetime.now(UTC)
    run = await opencode.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.RATE_LIMITED, "quota"), result.detail
    assert len(main_calls(server)) == 6  # the first call and opencode's five retries
    assert result.retry_at is not None
    assert 0 < (result.retry_at - before).total_seconds() < 90
    assert "Rate limit reached" in (result.detail or "")
    assert result.exit_code == 1
    assert run.strays == []


async def test_401_is_an_auth_failure(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, fail(Unauthorized()))

    run = await opencode.run(server, "Anything.")

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "auth"), run.result.detail
    assert "Incorrect API key" in (run.result.detail or "")
    assert len(main_calls(server)) == 1  # not retried
    assert run.strays == []


async def test_context_overflow_compacts_then_hands_off(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    # The call overflows; opencode compacts (a call of its own), which overflows too: it gives up.
    server = serve(served, fail(Overflow()), fail(Overflow()))

    run = await opencode.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.HANDOFF_NEEDED, "prompt_too_long")
    assert "ContextOverflowError" in (result.detail or "")
    assert len(main_calls(server)) == 2
    assert run.strays == []


async def test_context_overflow_then_a_compaction_that_fits_completes(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(
        served,
        fail(Overflow()),
        reply(Say("Summary of the conversation so far.")),  # the compaction
        reply(Say("Finished after the compaction.")),
    )

    run = await opencode.run(server, "Anything.")

    result = run.result
    # The error event makes opencode exit 1, but the session went on and finished cleanly.
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.exit_code == 1
    assert result.final_text == "Finished after the compaction."
    assert run.strays == []


async def test_silent_stream_is_killed_as_stalled(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Stall(120), Say("too late")))

    # OpenCode prints nothing before its first step either: a slow start must not look stalled.
    started = asyncio.get_running_loop().time()
    run = await opencode.run(server, "Anything.", stall_timeout_s=25)

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "stalled")
    assert asyncio.get_running_loop().time() - started < 60
    assert len(main_calls(server)) == 1
    assert run.strays == []


async def test_resume_continues_the_conversation(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(
        served,
        reply(Say("The answer is 42."), input_tokens=1000, output_tokens=10),
        reply(Say("You asked about 6 times 7."), input_tokens=1400, output_tokens=12),
    )

    first = await opencode.run(server, "What is 6 times 7?")
    assert first.result.outcome is Outcome.COMPLETED, first.result.detail
    second = await opencode.run(server, "What did I ask?", resume_session=first.result.session_id)

    result = second.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.session_id == first.result.session_id
    assert result.final_text == "You asked about 6 times 7."
    messages = main_calls(server)[1].json()["messages"]
    said = [(m["role"], m["content"]) for m in messages if m["role"] != "system"]
    assert said == [
        ("user", "What is 6 times 7?"),
        ("assistant", "The answer is 42."),
        ("user", "What did I ask?"),
    ]
    # Each run reports its own steps only.
    assert not OpenCodeAdapter.cumulative_usage
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1400, 12)
    assert second.strays == []


async def test_resume_of_an_unknown_session_fails_at_once(
    opencode: OpenCode, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Say("never asked")))

    run = await opencode.run(server, "Go on.", resume_session="ses_0000000000000000000000000")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.FAILED, "resume_failed"), result.detail
    assert result.exit_code == 1
    assert server.requests == []
    assert run.strays == []


async def test_a_plan_job_writes_its_plan_outside_the_worktree_through_its_permissions(
    opencode: OpenCode, served: list[ChatCompletionsServer], tmp_path: Path
) -> None:
    # A plan job's file lives outside the worktree (runner/planning.py). workspace_write denies
    # `external_directory`; the adapter allows the plan folder's paths in that rule, without
    # which the write tool refuses the file.
    folder = tmp_path / "plans" / "job-1"
    folder.mkdir(parents=True)
    plan_file = folder / "plan.json"
    plan = {"summary": "two steps", "tasks": [{"title": "a"}, {"title": "b", "blockers": [0]}]}
    beside = tmp_path / "plans" / "beside.json"  # outside the allowed folder: still denied
    server = serve(
        served,
        reply(Write(str(plan_file), json.dumps(plan)), Write(str(beside), "{}")),
        reply(Say("The plan is written.")),
    )

    run = await opencode.run(server, "Write the plan.", extra_dirs=[folder])

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert isinstance(validate_plan(plan_file.read_text()), Plan)
    assert not any(p.name == "plan.json" for p in opencode.workdir.rglob("*"))
    assert not beside.exists()
