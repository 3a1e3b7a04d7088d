"""Every agent adapter's real build + runner.process.run_agent + parser against its fake CLI.

The fakes live in tests/fakes/fake_<cli>.py and play tests/fakes/scenarios/<cli>/<name>.json,
chosen by a `[[fake:NAME]]` marker in the prompt, so the prompt path is exercised too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.agents import get_adapter, known_agents
from runner.agents.aider import AiderAdapter
from runner.agents.base import AgentAdapter, Outcome, Result, RunRequest
from runner.agents.codex import CodexAdapter, retry_at_from_text
from runner.agents.command import CommandAdapter
from runner.agents.copilot import CopilotAdapter
from runner.agents.gemini import GeminiAdapter, GeminiStreamParser
from runner.agents.opencode import OpenCodeAdapter
from runner.process import run_agent

FAKES = Path(__file__).resolve().parents[1] / "fakes"
ADAPTERS: dict[str, type[CodexAdapter | OpenCodeAdapter | GeminiAdapter | AiderAdapter]] = {
    "codex": CodexAdapter,
    "opencode": OpenCodeAdapter,
    "gemini": GeminiAdapter,
    "aider": AiderAdapter,
}
CLIS = sorted(ADAPTERS)
SCENARIOS = [
    ("success", Outcome.COMPLETED, "success"),
    ("rate_limit", Outcome.RATE_LIMITED, "quota"),
    ("auth_failure", Outcome.FAILED, "auth"),
    ("context_overflow", Outcome.HANDOFF_NEEDED, "prompt_too_long"),
    ("garbage_lines", Outcome.COMPLETED, "success"),
    ("crash", Outcome.FAILED, "crash"),
]
# Shapes the real binary produces in tests/conformance (so no fake plays them here).
REAL_BINARY_TESTED = {
    "codex": {"success", "rate_limit", "auth_failure", "context_overflow", "hang"},
    "gemini": {"success", "rate_limit", "auth_failure", "context_overflow", "crash", "hang"},
    "opencode": {"success", "rate_limit", "auth_failure", "context_overflow", "hang"},
    "aider": {"success", "rate_limit", "auth_failure", "context_overflow", "hang"},
}


def faked(cli: str, scenario: str) -> bool:
    return scenario not in REAL_BINARY_TESTED.get(cli, set())


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fakes' shebang is `/usr/bin/env python3`; make that resolve to this interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("GEMINI_API_KEY", "fake-gemini-key")  # the gemini fake needs an auth method


def fake(cli: str) -> str:
    return str(FAKES / f"fake_{cli}.py")


def worktree(tmp_path: Path) -> Path:
    workdir = tmp_path / "wt"
    if not workdir.exists():
        workdir.mkdir()
        subprocess.run(["git", "init", "-q", str(workdir)], check=True)
    return workdir


def request(tmp_path: Path, scenario: str, **kw: object) -> RunRequest:
    prompt = f"Add a users endpoint. [[fake:{scenario}]]"
    return RunRequest(task_id="octo/demo#1@1", prompt=prompt, workdir=worktree(tmp_path), **kw)  # type: ignore[arg-type]


async def run(
    adapter: AgentAdapter, tmp_path: Path, scenario: str, *, stall: float = 10, **kw: object
) -> Result:
    return await run_agent(
        adapter,
        request(tmp_path, scenario, **kw),
        timeout_s=20,
        stall_timeout_s=stall,
        kill_grace_s=0.5,
    )


@pytest.mark.parametrize(
    ("cli", "scenario", "outcome", "reason"),
    [(cli, *case) for case in SCENARIOS for cli in CLIS if faked(cli, case[0])],
)
async def test_scenario_classifies(
    tmp_path: Path, cli: str, scenario: str, outcome: Outcome, reason: str
) -> None:
    result = await run(ADAPTERS[cli](binary=fake(cli)), tmp_path, scenario)
    assert (result.outcome, result.reason) == (outcome, reason), result.detail
    if scenario == "success":
        assert (tmp_path / "wt" / "app" / "users.py").read_text().startswith("def users")
        assert result.final_text
        assert result.usage.output_tokens > 0
    if scenario == "garbage_lines":
        assert (tmp_path / "wt" / "NOTES.md").read_text() == "noise-proof\n"
    if outcome is not Outcome.COMPLETED:
        assert result.detail


async def test_codex_rate_limit_retry_at(tmp_path: Path) -> None:
    # A ChatGPT plan's "usage limit ... try again in" message: a scripted API-key provider
    # cannot make the real binary say it (a 429 there reads "last status: 429", no time).
    result = await run(CodexAdapter(binary=fake("codex")), tmp_path, "rate_limit")
    assert result.retry_at is not None
    assert 7400 < (result.retry_at - datetime.now(UTC)).total_seconds() < 7600
    assert result.exit_code == 1


def test_gemini_empty_success_is_not_completed() -> None:
    parser = GeminiStreamParser()
    parser.feed_stdout(json.dumps({"type": "init", "session_id": "s"}))
    parser.feed_stdout(json.dumps({"type": "tool_use", "tool_name": "read_file"}))
    parser.feed_stdout(json.dumps({"type": "result", "status": "success", "stats": {}}))
    assert parser.finish(0, None).reason == "empty_result"


def test_retry_at_from_text() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_at_from_text("try again in 3 days 2 hours.", now) == datetime(
        2026, 1, 4, 14, 0, tzinfo=UTC
    )
    assert retry_at_from_text("or try again at 3:04 PM.", now) == datetime(
        2026, 1, 1, 15, 4, tzinfo=UTC
    )
    assert retry_at_from_text("try again at 9:00 AM", now) == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    assert retry_at_from_text("Quota exceeded.", now) is None


# -- build -----------------------------------------------------------------------------------


def test_codex_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODEX_API_KEY", "ck")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-for-codex")
    req = RunRequest("t", "the prompt", tmp_path, model="gpt-5", system_append='say "hi"')
    inv = CodexAdapter(binary="codex").build(req)
    assert inv.argv == [
        "codex", "exec", "--json", "-s", "workspace-write", "-c", 'approval_policy="never"',
        "-C", str(tmp_path),
        "-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false",
        "-c", "feedback.enabled=false", "-c", "features.plugins=false",
        "-m", "gpt-5", "-c", 'developer_instructions="say \\"hi\\""', "-",
    ]  # fmt: skip
    assert inv.stdin == b"the prompt"
    assert inv.env == {"CODEX_API_KEY": "ck"}
    full = CodexAdapter(binary="codex").build(
        RunRequest("t", "p", tmp_path, permissions="full_unattended", resume_session="T1")
    )
    assert "--dangerously-bypass-approvals-and-sandbox" in full.argv
    assert "-s" not in full.argv
    assert full.argv[-3:] == ["resume", "T1", "-"]


def test_codex_build_points_a_provider_of_its_own_at_a_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "ok")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://runner-wide/v1")
    req = RunRequest("t", "p", tmp_path, extra_env={"STONEFORGE_CODEX_BASE_URL": "http://h/v1/"})
    inv = CodexAdapter(
        binary="codex", config={"model_providers.stoneforge.request_max_retries": 0}
    ).build(req)
    pairs = [inv.argv[i + 1] for i, arg in enumerate(inv.argv) if arg == "-c"]
    assert pairs[-6:] == [
        'model_provider="stoneforge"',
        'model_providers.stoneforge.name="stoneforge"',
        'model_providers.stoneforge.base_url="http://h/v1"',  # the request's own wins
        'model_providers.stoneforge.env_key="OPENAI_API_KEY"',  # the credential that is set
        'model_providers.stoneforge.wire_api="responses"',
        "model_providers.stoneforge.request_max_retries=0",
    ]
    assert inv.env == {"OPENAI_API_KEY": "ok"}  # Codex ignores the base URL variables
    monkeypatch.delenv("OPENAI_BASE_URL")
    plain = CodexAdapter(binary="codex").build(RunRequest("t", "p", tmp_path))
    assert not any("model_provider" in arg for arg in plain.argv)


def test_opencode_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "ok")
    req = RunRequest("t", "the prompt", tmp_path, model="anthropic/x", system_append="rules")
    inv = OpenCodeAdapter(binary="opencode").build(req)
    assert inv.argv == [
        "opencode", "run", "--format", "json", "--dir", str(tmp_path), "-m", "anthropic/x",
    ]  # fmt: skip
    assert inv.stdin == b"rules\n\nthe prompt"
    assert inv.env["OPENAI_API_KEY"] == "ok"
    assert json.loads(inv.env["OPENCODE_PERMISSION"])["external_directory"] == "deny"
    assert inv.env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"
    # Seeded in the agent's HOME so opencode does not npm-install its plugin package on start.
    lock = json.loads(inv.files[Path(".config/opencode/package-lock.json")])
    assert "@opencode-ai/plugin" in lock["packages"][""]["dependencies"]
    full = OpenCodeAdapter(binary="o").build(
        RunRequest("t", "p", tmp_path, permissions="full_unattended", resume_session="ses_1")
    )
    assert full.argv[-3:] == ["-s", "ses_1", "--auto"]


def test_copilot_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COPILOT_PROVIDER_API_KEY", "pk")
    monkeypatch.setenv("COPILOT_GITHUB_TOKEN", "gho_x")
    monkeypatch.setenv("GH_TOKEN", "ghs_runner")
    req = RunRequest("t", "the prompt", tmp_path, model="gpt-4.1", system_append="rules")
    inv = CopilotAdapter(binary="copilot").build(req)
    usage = Path(inv.argv[inv.argv.index("--usage-output-file") + 1])
    assert not usage.is_relative_to(tmp_path)  # nothing of copilot's lands in the worktree
    assert inv.argv[:7] == [
        "copilot", "--output-format", "json", "--no-auto-update", "--disable-client-telemetry",
        "--no-ask-user", "--no-color",
    ]  # fmt: skip
    assert inv.argv[-2:] == ["--model", "gpt-4.1"]
    assert "--allow-all-tools" in inv.argv
    assert inv.stdin == b"rules\n\nthe prompt"
    assert inv.env["COPILOT_GITHUB_TOKEN"] == "gho_x"
    assert "GH_TOKEN" not in inv.env
    assert "COPILOT_GITHUB_TOKEN" in inv.allowed_secrets
    read_only = CopilotAdapter(binary="c").build(
        RunRequest("t", "p", tmp_path, permissions="read_only", resume_session="S1")
    )
    assert read_only.argv[-1] == "--resume=S1"
    assert ["--deny-tool", "shell", "--deny-tool", "write"] == [
        a for i, a in enumerate(read_only.argv) if "--deny-tool" in read_only.argv[i - 1 : i + 1]
    ]
    fresh = CopilotAdapter(binary="c").build(RunRequest("t", "p", tmp_path, session_id="U"))
    assert fresh.argv[-1] == "--session-id=U"


def test_gemini_build(tmp_path: Path) -> None:
    req = RunRequest("t", "the prompt", tmp_path, model="gemini-2.5-pro", session_id="S")
    inv = GeminiAdapter(binary="gemini").build(req)
    assert inv.argv == [
        "gemini", "-p", "", "--output-format", "stream-json", "--skip-trust",
        "--approval-mode", "auto_edit", "-m", "gemini-2.5-pro", "--session-id", "S",
    ]  # fmt: skip
    assert inv.stdin == b"the prompt"
    assert inv.env["GEMINI_API_KEY"] == "fake-gemini-key"
    settings = json.loads(inv.files[Path(".gemini/settings.json")])  # in the private HOME
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert 'toolName = "run_shell_command"' in inv.files[Path(".gemini/policies/stoneforge.toml")]
    read_only = GeminiAdapter(binary="g").build(
        RunRequest("t", "p", tmp_path, permissions="read_only")
    )
    assert read_only.argv[read_only.argv.index("--approval-mode") + 1] == "plan"
    assert read_only.argv[read_only.argv.index("-m") + 1] == "gemini-2.5-pro"  # always -m
    assert list(read_only.files) == [Path(".gemini/settings.json")]  # no shell allowed
    vertex = GeminiAdapter(binary="g").build(
        RunRequest("t", "p", tmp_path, extra_env={"GOOGLE_GENAI_USE_VERTEXAI": "true"})
    )
    vertex_auth = json.loads(vertex.files[Path(".gemini/settings.json")])["security"]["auth"]
    assert vertex_auth["selectedType"] == "vertex-ai"


def test_aider_build(tmp_path: Path) -> None:
    inv = AiderAdapter(binary="aider").build(RunRequest("t", "the prompt", tmp_path, model="m"))
    assert inv.argv[:2] == ["aider", "--message-file"]
    message = Path(inv.argv[2])
    assert inv.files[message] == "the prompt"
    assert not message.is_relative_to(tmp_path)  # nothing of aider's lands in the worktree
    for flag in ("--yes-always", "--no-pretty", "--no-stream", "--no-auto-commits"):
        assert flag in inv.argv
    assert "--analytics-disable" in inv.argv
    assert inv.argv[inv.argv.index("--analytics-log") + 1].endswith("analytics.jsonl")
    assert inv.argv[-2:] == ["--model", "m"]
    assert inv.stdin is None
    # No price-list fetch, no SDK retries under aider's own, a dry run when read-only.
    assert inv.files[Path(".aider/caches/model_prices_and_context_window.json")] != "{}"
    assert inv.env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    settings = Path(inv.argv[inv.argv.index("--model-settings-file") + 1])
    assert "max_retries: 0" in inv.files[settings]
    assert "--dry-run" not in inv.argv
    read_only = RunRequest("t", "p", tmp_path, permissions="read_only")
    assert "--dry-run" in AiderAdapter(binary="aider").build(read_only).argv


@pytest.mark.parametrize("cli", CLIS)
def test_binary_comes_from_env_at_construction(monkeypatch: pytest.MonkeyPatch, cli: str) -> None:
    monkeypatch.setenv(f"STONEFORGE_{cli.upper()}_BIN", f"/opt/{cli}-x")
    adapter = get_adapter(cli)
    monkeypatch.setenv(f"STONEFORGE_{cli.upper()}_BIN", "/changed")
    assert adapter.build(RunRequest("t", "p", Path("."))).argv[0] == f"/opt/{cli}-x"


@pytest.mark.parametrize(
    ("cli", "own_key"),
    [
        ("codex", "CODEX_API_KEY"),
        ("opencode", "ANTHROPIC_API_KEY"),
        ("gemini", "GEMINI_API_KEY"),
        ("aider", "OPENAI_API_KEY"),
    ],
)
async def test_only_the_clis_own_credentials_reach_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: str, own_key: str
) -> None:
    monkeypatch.setenv(own_key, "own-secret")
    monkeypatch.setenv("GOOGLE_API_KEY" if cli != "gemini" else "OPENAI_API_KEY", "other-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_runner")
    monkeypatch.setenv("STONEFORGE_RUNNER_TOKEN", "runner-token")
    dump = tmp_path / "env.json"
    scenario = tmp_path / "dump.json"
    scenario.write_text(json.dumps([{"dump_env": str(dump)}, {"exit": 0}]))
    extra = {f"FAKE_{cli.upper()}_SCENARIO": str(scenario)}
    await run(ADAPTERS[cli](binary=fake(cli)), tmp_path, "x", extra_env=extra)
    env = json.loads(dump.read_text())
    assert env[own_key] == "own-secret"
    assert "other-secret" not in env.values()
    assert "GITHUB_TOKEN" not in env
    assert "STONEFORGE_RUNNER_TOKEN" not in env


@pytest.mark.parametrize("cli", CLIS)
def test_fakes_reject_unknown_flags(tmp_path: Path, cli: str) -> None:
    inv = ADAPTERS[cli](binary=fake(cli)).build(request(tmp_path, "success"))
    at = 2 if inv.argv[1] in ("exec", "run") else 1  # after the sub-command, before any value
    argv = [*inv.argv[:at], "--full-auto", *inv.argv[at:]]
    proc = subprocess.run(argv, input=b"p", capture_output=True, cwd=inv.cwd, timeout=10)
    assert proc.returncode != 0
    assert b"full-auto" in proc.stderr


# -- command ---------------------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "agent.py"
    path.write_text(body)
    return f"{sys.executable} {path}"


async def test_command_exit_zero_completes_with_stdout(tmp_path: Path) -> None:
    body = "import sys, pathlib\nprompt = sys.stdin.read()\n"
    body += "pathlib.Path('out.txt').write_text(prompt)\nprint('wrote out.txt')\n"
    adapter = CommandAdapter(script(tmp_path, body))
    result = await run(adapter, tmp_path, "ignored")
    assert (result.outcome, result.reason, result.final_text) == (
        Outcome.COMPLETED,
        "success",
        "wrote out.txt",
    )
    assert "[[fake:ignored]]" in (tmp_path / "wt" / "out.txt").read_text()


async def test_command_nonzero_exit_fails(tmp_path: Path) -> None:
    body = "import sys\nprint('boom', file=sys.stderr)\n"
    body += 'print(\'{"type": "result", "outcome": "completed"}\')\nsys.exit(3)\n'
    result = await run(CommandAdapter(script(tmp_path, body)), tmp_path, "x")
    assert (result.outcome, result.reason, result.exit_code) == (Outcome.FAILED, "crash", 3)
    assert "boom" in (result.detail or "")


async def test_command_result_line_sets_outcome_usage_and_retry_at(tmp_path: Path) -> None:
    line = {
        "type": "result",
        "outcome": "rate_limited",
        "reason": "quota",
        "summary": "slow down",
        "usage": {"input_tokens": 5, "output_tokens": 7, "cost_usd": 0.5},
        "retry_at": "2030-01-01T00:00:00+00:00",
    }
    body = f"import json\nprint('noise')\nprint(json.dumps({line!r}))\n"
    result = await run(CommandAdapter(script(tmp_path, body)), tmp_path, "x")
    assert (result.outcome, result.reason, result.final_text) == (
        Outcome.RATE_LIMITED,
        "quota",
        "slow down",
    )
    assert (result.usage.output_tokens, result.usage.cost_usd) == (7, 0.5)
    assert result.retry_at == datetime(2030, 1, 1, tzinfo=UTC)


async def test_command_hang_is_stalled(tmp_path: Path) -> None:
    body = "import time\nprint('start', flush=True)\ntime.sleep(60)\n"
    result = await run(CommandAdapter(script(tmp_path, body)), tmp_path, "x", stall=0.4)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "stalled")


def test_command_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STONEFORGE_AGENT_COMMAND", "my-agent --fast 'two words'")
    monkeypatch.setenv("STONEFORGE_AGENT_COMMAND_ENV", "MY_AGENT_TOKEN")
    monkeypatch.setenv("MY_AGENT_TOKEN", "t")
    inv = get_adapter("command").build(RunRequest("t", "p", tmp_path))
    assert inv.argv == ["my-agent", "--fast", "two words"]
    assert inv.env == {"MY_AGENT_TOKEN": "t"}
    assert inv.allowed_secrets == frozenset({"MY_AGENT_TOKEN"})
    monkeypatch.delenv("STONEFORGE_AGENT_COMMAND")
    with pytest.raises(ValueError, match="STONEFORGE_AGENT_COMMAND"):
        get_adapter("command")


def test_registry_knows_every_adapter() -> None:
    assert {
        "claude",
        "script",
        "codex",
        "opencode",
        "gemini",
        "aider",
        "copilot",
        "command",
    } <= set(known_agents())
    for name in CLIS:
        assert get_adapter(name).name == name
