"""The codex adapter against the real pinned `codex exec --json` and a scripted Responses server.

Each test runs the CLI through the runner's supervisor (tests.conformance.harness) with a private
HOME, the base URL handed to the adapter as `STONEFORGE_CODEX_BASE_URL` (or `OPENAI_BASE_URL`),
and under the network watch: the CLI may reach the model server and nothing else. Codex's own
retries are set to none (`request_max_retries`/`stream_max_retries`), so a 429 is answered once.
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
from runner.agents.codex import PROVIDER, CodexAdapter
from runner.agents.pricing import estimate
from runner.tries import price_unreported
from tests.conformance.harness import Run, git_workdir, run_cli, watched
from tests.models import netwatch
from tests.models.openai_responses import ResponsesServer, conversation
from tests.models.scenario import (
    Dialect,
    Overflow,
    RateLimit,
    Say,
    Script,
    ServerError,
    Shell,
    Stall,
    Turn,
    Unauthorized,
    Write,
    fail,
    reply,
)
from tests.models.server import Answer, Recorded

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

MODEL = "gpt-5.1-codex"  # a model of the price list, so the run's cost is the list's


def _apply_patch(path: str, content: str) -> tuple[str, dict[str, Any]]:
    """Codex writes files with `apply_patch`, which it runs itself when the model calls its
    shell tool with it (no apply_patch tool is offered to a provider's unknown model)."""
    added = "".join(f"+{line}\n" for line in content.splitlines())
    patch = f"*** Begin Patch\n*** Add File: {path}\n{added}*** End Patch"
    return "exec_command", {"cmd": f"apply_patch <<'PATCH'\n{patch}\nPATCH\n"}


CODEX = Dialect(write=_apply_patch, shell=lambda command: ("exec_command", {"cmd": command}))
NO_RETRIES = {
    f"model_providers.{PROVIDER}.request_max_retries": 0,
    f"model_providers.{PROVIDER}.stream_max_retries": 0,
}


@dataclass
class Codex:
    """One test's CLI: the wrapped binary, a worktree, a HOME kept across runs (resume)."""

    root: Path
    workdir: Path
    binary: Path

    @property
    def netlog(self) -> Path:
        return self.root / "net.log"

    async def run(
        self,
        server: ResponsesServer,
        prompt: str,
        *,
        env: dict[str, str] | None = None,
        stall_timeout_s: float = 30.0,
        config: dict[str, object] | None = None,
        **request: Any,
    ) -> Run:
        extra_env = env or {"STONEFORGE_CODEX_BASE_URL": f"{server.url}/v1", "CODEX_API_KEY": "k"}
        req = RunRequest(
            task_id="t", prompt=prompt, workdir=self.workdir, model=MODEL, extra_env=extra_env,
            **request,
        )  # fmt: skip
        adapter = CodexAdapter(str(self.binary), config={**NO_RETRIES, **(config or {})})
        return await run_cli(
            adapter,
            req,
            home=self.root / "home",
            netlog=self.netlog,
            allowed_ports={server.port},
            timeout_s=60,
            stall_timeout_s=stall_timeout_s,
            kill_grace_s=2,
        )


@pytest.fixture
def codex(tmp_path: Path) -> Codex:
    wrapped = watched("codex", tmp_path)
    return Codex(tmp_path, git_workdir(tmp_path), wrapped)


def serve(served: list[ResponsesServer], *turns: Turn) -> ResponsesServer:
    server = ResponsesServer(Script(list(turns), CODEX), model=MODEL).start()
    served.append(server)
    return server


def outputs(request: Recorded) -> list[str]:
    """The tool results a request carries back to the model."""
    items = request.json().get("input") or []
    return [str(i.get("output")) for i in items if i.get("type") == "function_call_output"]


async def test_edit_and_test_lands_in_worktree_with_tokens_and_cost(
    codex: Codex, served: list[ResponsesServer]
) -> None:
    code = "def add(a, b):\n    return a + b\n"
    check = "python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo passed > tests.log"
    server = serve(
        served,
        # Codex runs one response's tool calls at once: the check comes in a turn of its own.
        reply(
            Say("Adding calc.py."), Write("calc.py", code),
            input_tokens=3000, cached_tokens=1000, output_tokens=200, reasoning_tokens=120,
        ),
        reply(Shell(check), input_tokens=3200, cached_tokens=2900, output_tokens=20),
        reply(
            Say("Done: calc.add works."), input_tokens=3500, cached_tokens=3100, output_tokens=30
        ),
    )  # fmt: skip

    run = await codex.run(server, "Add calc.add and check it.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert (codex.workdir / "calc.py").read_text() == code
    assert (codex.workdir / "tests.log").read_text() == "passed\n"
    assert result.final_text == "Done: calc.add works."
    assert result.session_id
    assert result.exit_code == 0
    # Both tool results went back to the model: the patch applied, the check exited 0.
    assert len(server.requests) == 3
    sent = outputs(server.requests[2])
    assert "Success. Updated the following files:\nA calc.py" in sent[0]
    assert "Process exited with code 0" in sent[1]
    prompt, rounds = conversation(server.requests[2].json())
    assert "Add calc.add and check it." in prompt
    assert rounds == 2
    assert server.requests[0].headers["authorization"] == "Bearer k"
    assert server.requests[0].json()["model"] == MODEL
    # Tokens: Codex sums the two calls; its input count includes the cached tokens, ours not.
    usage = result.usage
    assert (usage.input_tokens, usage.cache_read) == (9700 - 7000, 7000)
    assert (usage.output_tokens, usage.reasoning_tokens) == (250, 120)
    assert usage.cost_usd is None  # Codex reports none: the runner prices the tokens
    assert result.model == MODEL
    price_unreported(result, MODEL, CodexAdapter.provider)
    assert result.usage.cost_usd == pytest.approx((2700 * 1.25 + 7000 * 0.125 + 250 * 10) / 1e6)
    assert estimate(MODEL, usage).unknown_model is False
    assert run.events[0].kind == "session"
    assert run.strays == []
    assert netwatch.connections(codex.netlog)  # the watch did see the model server


async def test_read_only_sandbox_denies_a_write(
    codex: Codex, served: list[ResponsesServer]
) -> None:
    server = serve(
        served,
        reply(Shell("echo no > denied.txt")),
        reply(Say("I could not write denied.txt: the sandbox is read-only.")),
    )

    run = await codex.run(server, "Write denied.txt.", permissions="read_only")

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert not (codex.workdir / "denied.txt").exists()
    # The model is told; Codex's stream does not always say (under load 0.171 sometimes leaves
    # an instantly failing command's item out of both `--json` and its rollout).
    told = outputs(server.requests[1])[0]
    assert "Process exited with code 1" in told
    assert "Read-only file system" in told
    assert all(e.data["is_error"] for e in run.events if e.kind == "tool_result")
    assert run.strays == []


async def test_429_is_rate_limited(codex: Codex, served: list[ResponsesServer]) -> None:
    server = serve(served, fail(RateLimit(retry_after_s=120)))

    run = await codex.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.RATE_LIMITED, "quota"), result.detail
    # Codex says only "exceeded retry limit, last status: 429": the retry-after is not passed on.
    assert result.retry_at is None
    assert "last status: 429" in (result.detail or "")
    assert result.exit_code == 1
    assert len(server.requests) == 1  # no retries, as configured
    assert run.strays == []


async def test_401_is_an_auth_failure(codex: Codex, served: list[ResponsesServer]) -> None:
    server = serve(served, fail(Unauthorized()))

    run = await codex.run(server, "Anything.")

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "auth"), run.result.detail
    assert "401 Unauthorized" in (run.result.detail or "")
    assert run.strays == []


async def test_context_overflow_hands_off(codex: Codex, served: list[ResponsesServer]) -> None:
    server = serve(served, fail(Overflow()))

    run = await codex.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.HANDOFF_NEEDED, "prompt_too_long")
    assert "ran out of room in the model's context window" in (result.detail or "")
    assert run.strays == []


async def test_silent_stream_is_killed_as_stalled(
    codex: Codex, served: list[ResponsesServer]
) -> None:
    server = serve(served, reply(Stall(60), Say("too late")))

    # 10 s: longer than codex's silent start on two loaded cores (a 3 s timer once killed it
    # before its first request), far shorter than the stall.
    started = asyncio.get_running_loop().time()
    run = await codex.run(server, "Anything.", stall_timeout_s=10)

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "stalled")
    assert asyncio.get_running_loop().time() - started < 45
    assert len(server.requests) == 1
    assert run.strays == []


async def test_resume_continues_the_conversation(
    codex: Codex, served: list[ResponsesServer]
) -> None:
    server = serve(
        served,
        reply(Say("The answer is 42."), input_tokens=1000, output_tokens=10),
        reply(Say("You asked about 6 times 7."), input_tokens=1400, output_tokens=12),
    )
    # OPENAI_BASE_URL and OPENAI_API_KEY serve as well as the STONEFORGE_/CODEX_ names.
    env = {"OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": "ok"}

    first = await codex.run(server, "What is 6 times 7?", env=env)
    assert first.result.outcome is Outcome.COMPLETED, first.result.detail
    second = await codex.run(
        server, "What did I ask?", env=env, resume_session=first.result.session_id
    )

    result = second.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.session_id == first.result.session_id
    assert result.final_text == "You asked about 6 times 7."
    # The server saw the earlier turn in the resumed request.
    texts = str(server.requests[1].json()["input"])
    assert "What is 6 times 7?" in texts
    assert "The answer is 42." in texts
    assert "What did I ask?" in texts
    assert server.requests[1].headers["authorization"] == "Bearer ok"
    # After a resume Codex reports the thread's running total (cumulative_usage).
    assert CodexAdapter.cumulative_usage
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2400, 22)
    assert second.strays == []


async def test_resume_of_an_unknown_thread_fails_at_once(
    codex: Codex, served: list[ResponsesServer]
) -> None:
    server = serve(served, reply(Say("never asked")))

    run = await codex.run(server, "Go on.", resume_session="0b0b0b0b-0000-4000-8000-000000000000")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.FAILED, "resume_failed"), result.detail
    assert result.session_id is None
    assert server.requests == []
    assert run.strays == []


class ReroutingServer(ResponsesServer):
    """Says in the `openai-model` header that another model answered (OpenAI's reroute)."""

    def answer(self, request: Recorded) -> Answer:
        answer = super().answer(request)
        answer.headers["openai-model"] = "gpt-5.1-codex-mini"
        return answer


async def test_a_rerouted_model_is_the_one_priced(
    codex: Codex, served: list[ResponsesServer]
) -> None:
    server = ReroutingServer(Script([reply(Say("Done."))], CODEX), model=MODEL).start()
    served.append(server)

    run = await codex.run(server, "Anything.")

    assert run.result.outcome is Outcome.COMPLETED, run.result.detail
    assert run.result.model == "gpt-5.1-codex-mini"


async def test_500_with_retries_off_is_a_crash(codex: Codex, served: list[ResponsesServer]) -> None:
    server = serve(served, fail(ServerError()))

    run = await codex.run(server, "Anything.")

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "crash")
    assert "high demand" in (run.result.detail or "")
    assert run.strays == []


async def test_a_plan_job_writes_its_plan_outside_the_worktree_through_add_dir(
    codex: Codex, served: list[ResponsesServer], tmp_path: Path
) -> None:
    # A plan job's file lives outside the worktree (runner/planning.py): the adapter makes its
    # folder a writable root of the sandbox with --add-dir. The temp dirs, writable by default
    # (and holding tmp_path), are taken out here so that only --add-dir lets the write through.
    folder = tmp_path / "plans" / "job-1"
    folder.mkdir(parents=True)
    plan_file = folder / "plan.json"
    plan = {"summary": "two steps", "tasks": [{"title": "a"}, {"title": "b", "blockers": [0]}]}
    write = f"cat > {plan_file} <<'JSON'\n{json.dumps(plan)}\nJSON\n"
    server = serve(served, reply(Shell(write)), reply(Say("The plan is written.")))
    no_tmp = {
        "sandbox_workspace_write.exclude_slash_tmp": True,
        "sandbox_workspace_write.exclude_tmpdir_env_var": True,
    }

    run = await codex.run(server, "Write the plan.", config=no_tmp,
                          env={"STONEFORGE_CODEX_BASE_URL": f"{server.url}/v1",
                               "CODEX_API_KEY": "k", "STONEFORGE_PLAN_FILE": str(plan_file)},
                          extra_dirs=[folder])  # fmt: skip

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert "Process exited with code 0" in outputs(server.requests[1])[0]
    assert isinstance(validate_plan(plan_file.read_text()), Plan)
    assert not any(p.name == "plan.json" for p in codex.workdir.rglob("*"))
