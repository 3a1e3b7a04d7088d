"""The aider adapter against the real pinned aider (clis/.aider-venv) and a scripted Chat
Completions server.

Aider has no tools: it applies the edits written in the model's reply, in the edit format it
picked for the model ("diff": SEARCH/REPLACE blocks for gpt-4.1; "whole": the whole file for a model
it does not know), so a scenario's reply is text in that format (`diff_edit`, `whole_edit`).
Each test runs aider through the runner's supervisor (tests.conformance.harness) with a private
HOME, `OPENAI_API_BASE` pointing at the server, and under the network watch. Aider's own retry
loop is fixed (8 retries over about a minute); the one test that lets it run out takes that long.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.core.plan import Plan, validate_plan
from runner.agents.aider import AiderAdapter
from runner.agents.base import Outcome, RunRequest
from runner.job import exclude_scratch
from tests.conformance.harness import Run, git_workdir, run_cli, watched
from tests.models import netwatch
from tests.models.openai_chat import ChatCompletionsServer
from tests.models.scenario import (
    Dialect,
    Overflow,
    RateLimit,
    Say,
    Script,
    Stall,
    Turn,
    Unauthorized,
    fail,
    reply,
)

pytestmark = [pytest.mark.conformance, pytest.mark.slow]

MODEL = "openai/gpt-4.1"  # in litellm's bundled price list: aider reports cost; "diff" edits


def _no_tools(*_: str) -> tuple[str, dict[str, Any]]:
    raise AssertionError("aider has no tools: write its edits as reply text")


AIDER = Dialect(write=_no_tools, shell=_no_tools)


def diff_edit(path: str, search: str, replace: str) -> str:
    """A SEARCH/REPLACE block of aider's "diff" format (an empty search creates the file)."""
    return f"{path}\n```\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


def whole_edit(path: str, content: str) -> str:
    """A file of aider's "whole" format: its name, then its whole new content, fenced."""
    return f"{path}\n```\n{content}```\n"


@dataclass
class Aider:
    """One test's CLI: the wrapped binary, a worktree, a HOME kept across runs."""

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
        model: str = MODEL,
        stall_timeout_s: float = 30.0,
        **request: Any,
    ) -> Run:
        env = {"OPENAI_API_KEY": "aider-key", "OPENAI_API_BASE": f"{server.url}/v1"}
        req = RunRequest(
            task_id="t", prompt=prompt, workdir=self.workdir, model=model, extra_env=env,
            **request,
        )  # fmt: skip
        return await run_cli(
            AiderAdapter(str(self.binary)),
            req,
            home=self.root / "home",
            netlog=self.netlog,
            allowed_ports={server.port},
            timeout_s=120,
            stall_timeout_s=stall_timeout_s,
            kill_grace_s=2,
        )

    def status(self) -> str:
        git = ["git", "-C", str(self.workdir), "status", "--porcelain", "--untracked-files=all"]
        return subprocess.run(git, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def aider(tmp_path: Path) -> Aider:
    wrapped = watched("aider", tmp_path)
    return Aider(tmp_path, git_workdir(tmp_path), wrapped)


def serve(served: list[ChatCompletionsServer], *turns: Turn) -> ChatCompletionsServer:
    server = ChatCompletionsServer(Script(list(turns), AIDER), model="gpt-4.1")
    server.start()
    served.append(server)
    return server


CODE = "def add(a, b):\n    return a + b\n"


async def test_edit_lands_in_worktree_with_tokens_and_cost(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    text = "Adding calc.add.\n\n" + diff_edit("calc.py", "", CODE)
    server = serve(served, reply(Say(text), input_tokens=3000, output_tokens=200))

    run = await aider.run(server, "Add calc.add.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert (aider.workdir / "calc.py").read_text() == CODE
    # Nothing of aider's own lands in the worktree: histories in the run directory, the repo-map
    # cache removed, no .gitignore entry (`--no-gitignore`), no commit (`--no-auto-commits`).
    # Aider does `git add` the file it creates (empty, then writes it).
    assert aider.status() == "AM calc.py\n"
    assert result.exit_code == 0
    assert result.final_text == text.strip()
    assert len(server.requests) == 1
    body = server.requests[0].json()
    assert body["model"] == "gpt-4.1"
    assert "stream" not in body  # --no-stream: the server's usage is the one counted
    assert "Add calc.add." in str(body["messages"])
    assert server.requests[0].headers["authorization"] == "Bearer aider-key"
    # Tokens from the analytics log (exact), cost as aider computes it from litellm's price list.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (3000, 200)
    assert result.usage.cost_usd == pytest.approx(3000 * 2e-6 + 200 * 8e-6)
    assert result.model == MODEL
    assert result.num_turns == 1
    assert [e.data["input"]["path"] for e in run.events if e.kind == "tool_call"] == ["calc.py"]
    assert run.strays == []  # no price-list fetch (the adapter seeds aider's cache)
    assert netwatch.connections(aider.netlog)


async def test_an_unknown_model_gets_whole_file_edits_and_no_cost(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Say("Here it is.\n\n" + whole_edit("calc.py", CODE))))

    run = await aider.run(server, "Add calc.add.", model="openai/test-model")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert (aider.workdir / "calc.py").read_text() == CODE
    assert result.model == "openai/test-model"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1200, 40)
    assert result.usage.cost_usd is None  # no price known: the runner prices the tokens
    assert run.strays == []


async def test_read_only_is_a_dry_run_and_no_suggested_command_runs(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    edit = diff_edit("README.md", "# sample\n", "# sample\n\nMore.\n")
    text = edit + "\nThen run:\n\n```bash\necho ran > shell.txt\n```\n"
    # README.md is not in the chat: aider adds it and asks again, and the edit comes again.
    server = serve(served, reply(Say(text)), reply(Say(edit)), reply(Say("Done.")))

    run = await aider.run(server, "Extend the readme.", permissions="read_only")

    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success")
    assert aider.status() == ""  # neither the edit nor the command
    assert "README.md" in str(server.requests[1].json()["messages"])
    # "Did not apply edit to README.md (--dry-run)": a refused edit.
    refused = [e.data["is_error"] for e in run.events if e.kind == "tool_result"]
    assert refused == [True]
    assert run.strays == []


async def test_a_429_then_an_answer_completes(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, fail(RateLimit(retry_after_s=1)), reply(Say("Nothing to change.")))

    run = await aider.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert len(server.requests) == 2  # the SDK's own retries are off: aider's loop retried
    assert [e.data["delay_s"] for e in run.events if e.kind == "retry"] == [0.2]  # 0.25, "%.1f"
    assert run.strays == []


async def test_429_until_aider_gives_up_is_rate_limited(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, *[fail(RateLimit(retry_after_s=1))] * 9)

    # Aider sleeps up to 32 s between retries, silently: its "Retrying in N seconds" line extends
    # the stall timer, or this 25 s one would kill it (25 s: longer than aider's silent start
    # on two loaded cores, which a 10 s timer once cut short).
    run = await aider.run(server, "Anything.", stall_timeout_s=25)

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.RATE_LIMITED, "quota"), result.detail
    assert result.exit_code == 0  # aider's own verdict: nothing wrong
    assert len(server.requests) == 9  # the call and aider's 8 retries
    assert [e.data["delay_s"] for e in run.events if e.kind == "retry"][-1] == 32.0
    assert result.retry_at is None  # aider does not say when
    assert "rate limited you" in (result.detail or "")
    assert run.strays == []


async def test_401_is_an_auth_failure(aider: Aider, served: list[ChatCompletionsServer]) -> None:
    server = serve(served, fail(Unauthorized()))

    run = await aider.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.FAILED, "auth"), result.detail
    assert result.exit_code == 0
    assert "not able to authenticate you" in (result.detail or "")
    assert len(server.requests) == 1  # not retried
    assert run.strays == []


async def test_context_overflow_hands_off(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, fail(Overflow()))

    run = await aider.run(server, "Anything.")

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.HANDOFF_NEEDED, "prompt_too_long")
    assert "has hit a token limit" in (result.detail or "")
    assert len(server.requests) == 1
    assert run.strays == []


async def test_silent_model_is_killed_as_stalled(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Stall(120), Say("too late")))

    started = asyncio.get_running_loop().time()
    run = await aider.run(server, "Anything.", stall_timeout_s=20)

    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "stalled")
    assert asyncio.get_running_loop().time() - started < 60
    assert len(server.requests) == 1
    assert run.strays == []


async def test_no_sessions_a_second_run_starts_afresh(
    aider: Aider, served: list[ChatCompletionsServer]
) -> None:
    server = serve(served, reply(Say("The answer is 42.")), reply(Say("I do not know.")))

    first = await aider.run(server, "What is 6 times 7?")
    second = await aider.run(server, "What did I ask?")

    assert first.result.outcome is second.result.outcome is Outcome.COMPLETED
    assert not AiderAdapter().can_resume()  # the runner never asks it to resume
    assert first.result.session_id is None
    said = str(server.requests[1].json()["messages"])
    assert "What did I ask?" in said
    assert "6 times 7" not in said
    assert "The answer is 42." not in said


async def test_a_plan_job_writes_its_plan_inside_the_worktree_under_stoneforge(
    aider: Aider, served: list[ChatCompletionsServer], tmp_path: Path
) -> None:
    # Aider edits only files under its repository: a file outside is refused ("is not in the
    # subpath of"). So its adapter says it cannot (writes_outside_workdir), and a plan job gives
    # it `.stoneforge/plan.json` in the worktree (runner/planning.py), in `edit_files`. The
    # pool's repositories keep `.stoneforge/` out of git (info/exclude), and aider refuses an
    # edit of an ignored file its reply names: it edits it when given it as --file
    # (with --add-gitignore-files).
    exclude_scratch(aider.workdir)
    plan_file = aider.workdir / ".stoneforge" / "plan.json"
    plan_file.parent.mkdir()
    plan = {"summary": "two steps", "tasks": [{"title": "a"}, {"title": "b", "blockers": [0]}]}
    text = "Writing the plan.\n\n" + diff_edit(str(plan_file), "", json.dumps(plan) + "\n")
    server = serve(served, reply(Say(text)))

    run = await aider.run(server, "Write the plan.", edit_files=[plan_file])

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert not AiderAdapter.writes_outside_workdir
    assert isinstance(validate_plan(plan_file.read_text()), Plan)
    assert aider.status() == ""  # ignored: nothing of it shows in git
    assert len(server.requests) == 1
