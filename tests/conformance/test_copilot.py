"""The copilot adapter against the real pinned GitHub Copilot CLI and a scripted Chat Completions
server.

Copilot runs with a provider of its own (BYOK: `COPILOT_PROVIDER_BASE_URL`, `..._API_KEY`,
`COPILOT_MODEL`) and `COPILOT_OFFLINE=true`: no GitHub sign-in, telemetry or update check. Each
test runs it through the runner's supervisor (tests.conformance.harness) with a private HOME and
under the network watch. `XDG_CACHE_HOME` is shared by the module's tests, so the native package
is unpacked once (about 6 s), not per HOME. Copilot's retry count is fixed (five retries); the
rate-limit test keeps them fast with `retry-after: 1`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.core.plan import Plan, validate_plan
from runner.agents.base import Outcome, RunRequest
from runner.agents.copilot import CopilotAdapter
from runner.agents.pricing import estimate
from runner.tries import price_unreported
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

MODEL = "gpt-4.1"  # a model of the price list, so the runner prices the run's tokens
COPILOT = Dialect(
    write=lambda path, content: ("create", {"path": path, "file_text": content}),
    shell=lambda command: ("bash", {"command": command, "description": "run it"}),
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("copilot-cache")


@dataclass
class Copilot:
    """One test's CLI: the wrapped binary, a worktree, a HOME kept across runs (resume)."""

    root: Path
    workdir: Path
    binary: Path
    cache: Path

    @property
    def netlog(self) -> Path:
        return self.root / "net.log"

    async def run(
        self,
        server: ChatCompletionsServer,
        prompt: str,
        *,
        stall_timeout_s: float = 30.0,
        **request: Any,
    ) -> Run:
        env = {
            "COPILOT_OFFLINE": "true",
            "COPILOT_PROVIDER_BASE_URL": f"{server.url}/v1",
            "COPILOT_PROVIDER_API_KEY": "byok-key",
            "XDG_CACHE_HOME": str(self.cache),
        }
        req = RunRequest(
            task_id="t", prompt=prompt, workdir=self.workdir, model=MODEL, extra_env=env,
            **request,
        )  # fmt: skip
        return await run_cli(
            CopilotAdapter(str(self.binary)),
            req,
            home=self.root / "home",
            netlog=self.netlog,
            allowed_ports={server.port},
            timeout_s=90,
            stall_timeout_s=stall_timeout_s,
            kill_grace_s=2,
        )


@pytest.fixture
def copilot(tmp_path: Path, cache: Path) -> Copilot:
    wrapped = watched("copilot", tmp_path)
    return Copilot(tmp_path, git_workdir(tmp_path), wrapped, cache)


def serve(served: list[ChatCompletionsServer], *turns: Turn) -> ChatCompletionsServer:
    server = ChatCompletionsServer(Script(list(turns), COPILOT), model=MODEL)
    server.start()
    served.append(server)
    return server


def tool_results(request: Recorded) -> list[str]:
    messages = request.json().get("messages") or []
    return [str(m.get("content")) for m in messages if m.get("role") == "tool"]


async def test_edit_and_test_lands_in_worktree_with_tokens(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    code = "def add(a, b):\n    return a + b\n"
    check = "python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo passed > tests.log"
    server = serve(
        served,
        reply(
            Say("Adding calc.py."), Write(str(copilot.workdir / "calc.py"), code),
            input_tokens=3000, cached_tokens=1000, output_tokens=200,
        ),
        reply(Shell(check), input_tokens=3200, cached_tokens=2900, output_tokens=20),
        reply(Say("Done: calc.add works."), input_tokens=3500, output_tokens=30),
    )  # fmt: skip

    run = await copilot.run(server, "Add calc.add and check it.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert (copilot.workdir / "calc.py").read_text() == code
    assert (copilot.workdir / "tests.log").read_text() == "passed\n"
    assert result.final_text == "Done: calc.add works."
    assert result.session_id
    assert result.exit_code == 0
    assert len(server.requests) == 3
    assert "exit code 0" in tool_results(server.requests[2])[-1]
    assert server.requests[0].headers["authorization"] == "Bearer byok-key"
    assert server.requests[0].json()["model"] == MODEL
    assert "Add calc.add and check it." in str(server.requests[0].json()["messages"][-1])
    # Tokens from the usage file: Copilot's input count includes the cached tokens, ours not.
    usage = result.usage
    assert (usage.input_tokens, usage.cache_read) == (9700 - 3900, 3900)
    assert usage.output_tokens == 250
    assert usage.cost_usd is None  # premium requests, not money (0 with BYOK): the runner prices
    assert result.model == MODEL
    price_unreported(result, MODEL, CopilotAdapter.provider)
    assert result.usage.cost_usd == pytest.approx((5800 * 2.0 + 3900 * 0.5 + 250 * 8.0) / 1e6)
    assert estimate(MODEL, usage).unknown_model is False
    names = [e.data["name"] for e in run.events if e.kind == "tool_call"]
    assert names == ["create", "bash"]
    assert run.strays == []
    assert netwatch.connections(copilot.netlog)  # the watch did see the model server
    assert sorted(p.name for p in copilot.workdir.iterdir()) == [
        ".git", "README.md", "__pycache__", "calc.py", "tests.log",
    ]  # fmt: skip


async def test_read_only_denies_the_shell(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    server = serve(
        served,
        reply(Shell("echo no > denied.txt")),
        reply(Say("The shell is not allowed here.")),
    )

    run = await copilot.run(server, "Write denied.txt.", permissions="read_only")

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert not (copilot.workdir / "denied.txt").exists()
    assert [e.data["is_error"] for e in run.events if e.kind == "tool_result"] == [True]
    assert "denied" in tool_results(server.requests[1])[0].lower()
    assert run.strays == []


async def test_429_is_rate_limited(copilot: Copilot, served: list[ChatCompletionsServer]) -> None:
    server = serve(served, *[fail(RateLimit(retry_after_s=1))] * 6)

    run = await copilot.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.RATE_LIMITED, "quota"), result.detail
    assert len(server.requests) == 6  # the first call and Copilot's five retries
    # Copilot says "retried 5 times (total retry wait time: ...)", not when to come back.
    assert result.retry_at is None
    assert "retried 5 times" in (result.detail or "")
    assert [e.kind for e in run.events].count("retry") == 5
    assert result.exit_code == 1
    assert run.strays == []


async def test_401_is_an_auth_failure(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, *[fail(Unauthorized())] * 3)

    run = await copilot.run(server, "Anything.")

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "auth"), run.result.detail
    assert "Authentication failed with provider" in (run.result.detail or "")
    assert len(server.requests) == 3  # a 401 is retried twice ("transient_auth_error")
    assert run.strays == []


async def test_context_overflow_hands_off(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, fail(Overflow()))

    run = await copilot.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.HANDOFF_NEEDED, "prompt_too_long")
    assert "maximum context length" in (result.detail or "")
    assert len(server.requests) == 1
    assert run.strays == []


async def test_silent_stream_is_killed_as_stalled(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Stall(120), Say("too late")))

    started = asyncio.get_running_loop().time()
    run = await copilot.run(server, "Anything.", stall_timeout_s=20)

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "stalled")
    assert asyncio.get_running_loop().time() - started < 60
    assert len(server.requests) == 1
    assert run.strays == []


async def test_resume_continues_the_conversation(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    server = serve(
        served,
        reply(Say("The answer is 42."), input_tokens=1000, output_tokens=10),
        reply(Say("You asked about 6 times 7."), input_tokens=1400, output_tokens=12),
    )

    first = await copilot.run(server, "What is 6 times 7?")
    assert first.result.outcome is Outcome.COMPLETED, first.result.detail
    second = await copilot.run(server, "What did I ask?", resume_session=first.result.session_id)

    result = second.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.session_id == first.result.session_id
    assert result.final_text == "You asked about 6 times 7."
    said = str(server.requests[1].json()["messages"])
    assert "What is 6 times 7?" in said
    assert "The answer is 42." in said
    assert "What did I ask?" in said
    # After a resume the usage file counts the whole session (runner.usage takes differences).
    assert CopilotAdapter.cumulative_usage
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2400, 22)
    assert second.strays == []


async def test_resume_of_an_unknown_session_fails_at_once(
    copilot: Copilot, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Say("never asked")))

    run = await copilot.run(server, "Go on.", resume_session="0b0b0b0b-0000-4000-8000-000000000000")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.FAILED, "resume_failed"), result.detail
    assert server.requests == []
    assert run.strays == []


async def test_a_plan_job_writes_its_plan_outside_the_worktree_through_add_dir(
    copilot: Copilot, served: list[ChatCompletionsServer], tmp_path: Path
) -> None:
    # A plan job's file lives outside the worktree (runner/planning.py): the adapter allows its
    # folder with --add-dir, without which the path check refuses it (the temp dir it allows
    # is the run's private TMPDIR, not tmp_path's).
    folder = tmp_path / "plans" / "job-1"
    folder.mkdir(parents=True)
    plan_file = folder / "plan.json"
    plan = {"summary": "two steps", "tasks": [{"title": "a"}, {"title": "b", "blockers": [0]}]}
    server = serve(
        served, reply(Write(str(plan_file), json.dumps(plan))), reply(Say("The plan is written."))
    )

    run = await copilot.run(server, "Write the plan.", extra_dirs=[folder])

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert isinstance(validate_plan(plan_file.read_text()), Plan)
    assert not any(p.name == "plan.json" for p in copilot.workdir.rglob("*"))
