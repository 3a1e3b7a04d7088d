"""Gemini CLI (the pinned ``@google/gemini-cli``) through ``GeminiAdapter`` and the runner's
supervisor, against a scripted Gemini API on loopback (``tests.models.gemini``).

Credentials go in as the runner would pass them: ``GEMINI_API_KEY`` and ``GOOGLE_GEMINI_BASE_URL``
in the request's ``extra_env``; the adapter writes the settings file into the private HOME the
harness keeps per test (sessions live there too). Every run sets the CLI's own retries to one
attempt (``max_attempts=1``) unless a test is about retrying, so a failure ends at once.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.core.plan import Plan, validate_plan
from runner.agents import pricing
from runner.agents.base import Outcome, RunRequest
from runner.agents.gemini import DEFAULT_MODEL, GeminiAdapter
from tests.conformance.clis import require, versions
from tests.conformance.harness import Run, git_workdir, run_cli
from tests.models import netwatch
from tests.models.gemini import GeminiServer
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

GEMINI = Dialect(
    write=lambda path, content: ("write_file", {"file_path": path, "content": content}),
    shell=lambda command: ("run_shell_command", {"command": command, "description": "run it"}),
)
MODEL = "gemini-2.5-flash"
# The no-output timeout of the stall tests: longer than the CLI's silent start (about 1 s on an
# idle machine, 3.5 s on a loaded one), shorter than the silences the tests play.
STALL_S = 8


class Rig:
    """One test's worktree, HOME (kept between runs, for resume) and server."""

    def __init__(self, root: Path, turns: list[Turn], **server: Any) -> None:
        self.root = root
        self.home = root / "home"
        self.workdir = git_workdir(root)
        self.script = Script(turns, GEMINI)
        self.server = GeminiServer(self.script, **server)

    def request(self, prompt: str = "Make the tests pass.", **kw: Any) -> RunRequest:
        env = {"GEMINI_API_KEY": "dummy", "GOOGLE_GEMINI_BASE_URL": self.server.url}
        kw.setdefault("model", MODEL)
        return RunRequest("octo/demo#1@1", prompt, self.workdir, extra_env=env, **kw)

    async def run(
        self, req: RunRequest, *, attempts: int = 1, watch: bool = False, stall_s: float = 30
    ) -> Run:
        binary: Path = require("gemini")
        log = self.root / "net.log"
        if watch:
            binary = netwatch.wrap(binary, log, self.root / "gemini-watched")
        return await run_cli(
            GeminiAdapter(str(binary), max_attempts=attempts),
            req,
            home=self.home,
            netlog=log if watch else None,
            allowed_ports={self.server.port},
            stall_timeout_s=stall_s,
        )

    def bodies(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.server.requests]

    def __enter__(self) -> Rig:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def function_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        part["functionResponse"]
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if "functionResponse" in part
    ]


def texts(body: dict[str, Any], role: str) -> str:
    return "\n".join(
        str(part.get("text", ""))
        for content in body.get("contents") or []
        if content.get("role") == role
        for part in content.get("parts") or []
    )


async def test_edits_runs_the_tests_and_finishes_under_the_network_watch(tmp_path: Path) -> None:
    """The default permissions (workspace_write) write, edit and run the shell; tokens are Gemini's
    ``usageMetadata`` summed, thoughts counted as output; no other host is reached."""
    wt = tmp_path / "wt"
    check = "python3 -B -c 'import greet; assert greet.hello() == \"hi\"' && echo tests passed"
    turns = [
        reply(
            Say("Adding greet.py."),
            Write(str(wt / "greet.py"), 'def hello():\n    return "hi"\n'),
            Tool(
                "replace",
                {
                    "file_path": str(wt / "README.md"),
                    "instruction": "Say what the sample does.",
                    "old_string": "# sample\n",
                    "new_string": "# sample\n\nSays hi.\n",
                },
            ),
            Shell(check),
            input_tokens=3000,
            cached_tokens=1000,
            output_tokens=50,
        ),
        reply(Say("Done: greet.py added and the tests pass."), input_tokens=3500, output_tokens=20),
    ]
    with Rig(tmp_path, turns, thoughts_tokens=7) as rig:
        run = await rig.run(rig.request(model=None), watch=True)
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.exit_code == 0
    assert result.final_text == "Done: greet.py added and the tests pass."
    assert (wt / "greet.py").read_text() == 'def hello():\n    return "hi"\n'
    assert (wt / "README.md").read_text() == "# sample\n\nSays hi.\n"
    assert rig.script.finished
    assert rig.script.extra_calls == 0
    # -m is always passed: the adapter's default model, no routing call to another model.
    assert rig.server.calls == [(DEFAULT_MODEL, "streamGenerateContent")] * 2
    assert rig.server.requests[0].headers["x-goog-api-key"] == "dummy"
    assert result.model == DEFAULT_MODEL
    # The shell ran (in workspace_write: the adapter allows run_shell_command) and its output
    # went back to the model; the write's result too.
    answers = function_responses(rig.bodies()[1])
    assert [a["name"] for a in answers] == ["write_file", "replace", "run_shell_command"]
    assert "tests passed" in json.dumps(answers[2])
    # Tokens as billed: prompt 6500 of which 1000 cached; output 70 candidates + 2x7 thoughts.
    usage = result.usage
    assert (usage.input_tokens, usage.cache_read) == (5500, 1000)
    assert (usage.output_tokens, usage.reasoning_tokens) == (84, 14)
    assert usage.cost_usd is None  # Gemini reports none: the runner prices result.model
    priced = pricing.estimate(result.model, usage, GeminiAdapter.provider)
    rates = pricing.table()["providers"]["google"][DEFAULT_MODEL]
    assert not priced.unknown_model
    assert priced.cost_usd == pytest.approx(
        (5500 * rates["input"] + 1000 * rates["cache_read"] + 84 * rates["output"]) / 1e6
    )
    assert result.session_id
    assert [e.data["name"] for e in run.events if e.kind == "tool_call"] == [
        "write_file",
        "replace",
        "run_shell_command",
    ]
    assert netwatch.connections(tmp_path / "net.log"), "the watch saw no connect at all"
    assert run.strays == []
    # Nothing of the CLI's lands in the worktree; its settings are in the private HOME.
    assert sorted(p.name for p in wt.iterdir()) == [".git", "README.md", "greet.py"]
    assert (rig.home / ".gemini" / "settings.json").exists()


def test_probe_reads_the_pinned_version_and_leaves_home_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "runner-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    info = GeminiAdapter(str(require("gemini"))).probe()
    assert info.version == versions()["gemini"]
    assert list(home.iterdir()) == []  # `--version` alone writes ~/.gemini/projects.json.*.tmp


async def test_read_only_denies_writes_and_the_shell(tmp_path: Path) -> None:
    """``plan`` mode: a write outside the plans directory is refused and the shell tool is not
    even registered; both come back to the model as errors and the run still completes."""
    wt = tmp_path / "wt"
    turns = [
        reply(Write(str(wt / "x.txt"), "x\n"), Shell("touch shell.txt")),
        reply(Say("I could not change anything.")),
    ]
    with Rig(tmp_path, turns) as rig:
        run = await rig.run(rig.request(permissions="read_only"))
    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success"), (
        run.result.detail
    )
    assert not (wt / "x.txt").exists()
    assert not (wt / "shell.txt").exists()
    results = [e.raw for e in run.events if e.kind == "tool_result"]
    assert [r["status"] for r in results] == ["error", "error"]  # type: ignore[index]
    errors = [r["error"]["type"] for r in results]  # type: ignore[index]
    assert errors == ["invalid_tool_params", "tool_not_registered"]
    answers = json.dumps(function_responses(rig.bodies()[1]))
    assert "Access denied" in answers
    assert "not found" in answers


async def test_rate_limit_is_rate_limited_with_retry_at(tmp_path: Path) -> None:
    """429 RESOURCE_EXHAUSTED with a RetryInfo delay: the CLI says "Suggested retry after 42s"
    and exits 173 (429 mod 256)."""
    with Rig(tmp_path, [fail(RateLimit(retry_after_s=42))]) as rig:
        before = datetime.now(UTC)
        run = await rig.run(rig.request())
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.RATE_LIMITED, "quota"), result.detail
    assert result.exit_code == 173
    assert result.retry_at is not None
    assert 41 <= (result.retry_at - before).total_seconds() <= 60
    assert len(rig.server.requests) == 1


async def test_a_spent_daily_quota_is_rate_limited_without_retry_at(tmp_path: Path) -> None:
    """A per-day QuotaFailure is a TerminalQuotaError: no delay, not retried, exit 173."""
    with Rig(tmp_path, [fail(RateLimit())], daily_quota=True) as rig:
        run = await rig.run(rig.request(), attempts=3)
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.RATE_LIMITED, "quota"), result.detail
    assert result.exit_code == 173
    assert result.retry_at is None
    assert "daily quota" in (result.detail or "")
    assert len(rig.server.requests) == 1


async def test_a_short_rate_limit_is_waited_out_by_the_cli(tmp_path: Path) -> None:
    """With retries on, the CLI waits the RetryInfo delay itself; its "Retrying after" line
    extends the stall timer, so a wait longer than the stall timeout does not kill it."""
    turns = [fail(RateLimit(retry_after_s=10)), reply(Say("Done after the wait."))]
    with Rig(tmp_path, turns) as rig:
        started = time.monotonic()
        run = await rig.run(rig.request(), attempts=2, stall_s=STALL_S)
    assert (run.result.outcome, run.result.reason) == (Outcome.COMPLETED, "success"), (
        run.result.detail
    )
    assert run.result.final_text == "Done after the wait."
    assert len(rig.server.requests) == 2
    retries = [e for e in run.events if e.kind == "retry"]
    assert len(retries) == 1
    assert retries[0].data["wait_s"] >= 10
    assert time.monotonic() - started >= 10


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [(401, 145), (400, 144)],
    ids=["401-unauthenticated", "400-api-key-invalid"],
)
async def test_a_bad_key_fails_as_auth(tmp_path: Path, status: int, exit_code: int) -> None:
    """Google answers a bad key with 400 INVALID_ARGUMENT / API_KEY_INVALID (and 401
    UNAUTHENTICATED elsewhere): both are auth, not a crash."""
    with Rig(tmp_path, [fail(Unauthorized())], bad_key_status=status) as rig:
        run = await rig.run(rig.request())
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.FAILED, "auth"), result.detail
    assert result.exit_code == exit_code
    assert "API key not valid" in (result.detail or "")
    assert len(rig.server.requests) == 1  # not retried


async def test_context_overflow_hands_off(tmp_path: Path) -> None:
    """Gemini's 400 "The input token count (N) exceeds the maximum number of tokens allowed"
    ends the run (exit 144): a handoff, not a crash."""
    with Rig(tmp_path, [fail(Overflow())]) as rig:
        run = await rig.run(rig.request())
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.HANDOFF_NEEDED, "prompt_too_long"), (
        result.detail
    )
    assert result.exit_code == 144
    assert "exceeds the maximum number of tokens" in (result.detail or "")
    assert len(rig.server.requests) == 1  # no compression and retry


async def test_server_error_is_a_crash_with_the_client_report_in_the_private_tmp(
    tmp_path: Path,
) -> None:
    """500 after the last attempt: ``result`` status error, exit 244 (500 mod 256). The CLI's
    ``gemini-client-error-*.json`` report goes to TMPDIR, inside the private HOME."""
    with Rig(tmp_path, [fail(ServerError())]) as rig:
        run = await rig.run(rig.request())
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.FAILED, "crash"), result.detail
    assert result.exit_code == 244
    assert "INTERNAL" in (result.detail or "")
    assert list((rig.home / "tmp").glob("gemini-client-error-*.json"))
    assert sorted(p.name for p in (tmp_path / "wt").iterdir()) == [".git", "README.md"]


async def test_a_silent_stream_is_killed_as_stalled(tmp_path: Path) -> None:
    with Rig(tmp_path, [reply(Stall(120), Say("too late"))]) as rig:
        started = time.monotonic()
        run = await rig.run(rig.request(), stall_s=STALL_S)
    assert (run.result.outcome, run.result.reason) == (Outcome.FAILED, "stalled"), run.result.detail
    assert len(rig.server.requests) == 1  # killed while the model call hung, not at startup
    assert run.result.session_id  # the init event came before the silence
    assert time.monotonic() - started < 60


async def test_the_turn_cap_hands_off(tmp_path: Path) -> None:
    """``max_turns`` becomes ``model.maxSessionTurns``; the CLI stops when the model wants more."""
    wt = tmp_path / "wt"
    turns = [
        reply(Write(str(wt / "a.txt"), "a\n")),
        reply(Write(str(wt / "b.txt"), "b\n")),
        reply(Say("never reached")),
    ]
    with Rig(tmp_path, turns) as rig:
        run = await rig.run(rig.request(max_turns=1))
    result = run.result
    assert (result.outcome, result.reason) == (Outcome.HANDOFF_NEEDED, "max_turns"), result.detail
    assert (wt / "a.txt").exists()
    assert not (wt / "b.txt").exists()
    assert result.exit_code == 53
    assert "FatalTurnLimitedError" in (result.detail or "")
    assert result.usage.input_tokens == 1200  # the calls made before the cap still count


async def test_resume_continues_the_session(tmp_path: Path) -> None:
    """``--resume <id>`` in the same worktree and HOME: the second request carries the first
    run's turns; its stats count this run only (``cumulative_usage = False``)."""
    turns = [
        reply(Say("First answer: I looked around."), input_tokens=1000, output_tokens=10),
        reply(Say("Second answer: fixed."), input_tokens=2000, output_tokens=30),
    ]
    session = str(uuid.uuid4())
    with Rig(tmp_path, turns) as rig:
        first = await rig.run(rig.request("Look at the repo.", session_id=session))
        assert first.result.outcome is Outcome.COMPLETED, first.result.detail
        assert first.result.session_id == session  # --session-id is honoured
        again = await rig.run(rig.request("Now fix it.", resume_session=session))
    result = again.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert result.session_id == session
    assert result.final_text == "Second answer: fixed."
    body = rig.bodies()[-1]
    assert "Look at the repo." in texts(body, "user")
    assert "Now fix it." in texts(body, "user")
    assert "First answer: I looked around." in texts(body, "model")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2000, 30)
    assert GeminiAdapter.cumulative_usage is False


async def test_resume_of_an_unknown_session_is_resume_failed(tmp_path: Path) -> None:
    """Exit 42 before any model call, with one of two messages: no session at all for this
    worktree, or none with that id. The runner then starts afresh."""
    with Rig(tmp_path, [reply(Say("A session now exists."))]) as rig:
        empty = await rig.run(rig.request("Fix it.", resume_session=str(uuid.uuid4())))
        assert rig.server.requests == []
        first = await rig.run(rig.request("Look."))
        assert first.result.outcome is Outcome.COMPLETED, first.result.detail
        other = await rig.run(rig.request("Fix it.", resume_session=str(uuid.uuid4())))
    assert len(rig.server.requests) == 1
    for run, message in [
        (empty, "No previous sessions found for this project"),
        (other, "Invalid session identifier"),
    ]:
        result = run.result
        assert (result.outcome, result.reason) == (Outcome.FAILED, "resume_failed"), result.detail
        assert result.exit_code == 42
        assert message in (result.detail or "")


async def test_a_plan_job_writes_its_plan_outside_the_worktree_through_include_directories(
    tmp_path: Path,
) -> None:
    # A plan job's file lives outside the worktree (runner/planning.py): the adapter adds its
    # folder to the workspace with --include-directories, without which write_file refuses a
    # path outside the workspace.
    folder = tmp_path / "plans" / "job-1"
    folder.mkdir(parents=True)
    plan_file = folder / "plan.json"
    plan = {"summary": "two steps", "tasks": [{"title": "a"}, {"title": "b", "blockers": [0]}]}
    turns = [
        reply(Write(str(plan_file), json.dumps(plan))),
        reply(Say("The plan is written.")),
    ]
    with Rig(tmp_path, turns) as rig:
        run = await rig.run(rig.request("Write the plan.", extra_dirs=[folder]))

    result = run.result
    assert (result.outcome, result.reason) == (Outcome.COMPLETED, "success"), result.detail
    assert isinstance(validate_plan(plan_file.read_text()), Plan)
    assert not any(p.name == "plan.json" for p in rig.workdir.rglob("*"))
