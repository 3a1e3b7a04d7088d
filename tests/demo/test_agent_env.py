"""`stoneforge demo --agent NAME`: the runner gets the agent's own credentials and nothing else of
the caller's environment, and a demo whose CLI is missing or has no credentials stops at once.

Each test runs the real command line (``python -m stoneforge demo``) as its own process with an
environment built from scratch, so a developer's own keys never leak into what is asserted. The
agent is a small stand-in executable at ``STONEFORGE_CLAUDE_BIN``: it answers ``--version`` like
Claude Code and, when run for a task, records the environment it was given.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.agents import get_adapter, known_agents
from stoneforge.agent_env import agent_env, check_agent

ROOT = Path(__file__).resolve().parents[2]
BASICS = {"PATH", "LANG", "LC_ALL"}  # what the runner passes every agent (runner.process)
CLAUDE_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-demo-key",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/anthropic",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth-demo-token",
}
UNRELATED = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-never-passed",
    "GITHUB_TOKEN": "ghp_never_passed",
    "OPENAI_API_KEY": "sk-openai-another-agents-key",  # declared by codex, not by claude
    "DATABASE_PASSWORD": "hunter2",
    "MY_PROJECT_SETTING": "not-the-agents-business",
}

STAND_IN = """#!{python}
import json, os, sys
if sys.argv[1:] == ["--version"]:
    print("{version} (Claude Code)")
    sys.exit(0)
if "-p" not in sys.argv[1:]:  # --help, from the probe
    sys.exit(0)
sys.stdin.read()
with open(os.path.join({record!r}, str(os.getpid()) + ".json"), "w") as fh:
    json.dump(dict(os.environ), fh)
print(json.dumps({{"type": "result", "subtype": "error_during_execution", "is_error": True}}))
sys.exit(1)
"""


def stand_in(where: Path, version: str = "2.1.328") -> tuple[Path, Path]:
    """A Claude Code stand-in at ``where/claude`` and the directory it records environments in."""
    record = where / "seen"
    record.mkdir(parents=True)
    path = where / "claude"
    path.write_text(STAND_IN.format(python=sys.executable, version=version, record=str(record)))
    path.chmod(0o755)
    return path, record


def base_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}


def demo(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stoneforge", "demo", *argv],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def runner_pid(work: Path) -> int:
    """The demo's runner: the process whose command line has its work dir."""
    marker = str(work / "runner").encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runner" in cmdline and marker in cmdline:
            return int(entry.name)
    raise AssertionError(f"no runner process with --work-dir {work / 'runner'}")


@pytest.mark.slow
def test_the_runner_and_the_agent_get_the_agents_credentials_and_nothing_else(
    tmp_path: Path,
) -> None:
    binary, record = stand_in(tmp_path / "bin")
    work = tmp_path / "demo"
    env = {
        **base_env(tmp_path / "home"),
        **CLAUDE_KEYS,
        **UNRELATED,
        "STONEFORGE_CLAUDE_BIN": str(binary),
    }
    proc = demo(["--agent", "claude", "--work-dir", str(work), "--timeout", "90"], env)
    try:
        deadline = time.monotonic() + 60
        while not any(record.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = sorted(record.iterdir())
        assert seen, proc.communicate(timeout=30) if proc.poll() is not None else "no agent ran"
        runner = runner_pid(work)
        runner_env = environ_of(runner)
        os.kill(runner, signal.SIGKILL)  # spares the test the runner's shutdown grace
    finally:
        proc.send_signal(signal.SIGINT)  # the demo stops its children on Ctrl-C
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()

    # The runner got the declared variables and the binary override, none of the others.
    for name, value in {**CLAUDE_KEYS, "STONEFORGE_CLAUDE_BIN": str(binary)}.items():
        assert runner_env.get(name) == value, name
    assert not set(UNRELATED) & set(runner_env), runner_env
    from_caller = {n for n, v in runner_env.items() if env.get(n) == v}
    assert from_caller <= {*CLAUDE_KEYS, "STONEFORGE_CLAUDE_BIN", "PATH", "HOME", "LANG"}

    # The agent saw its own credentials, and no other secret of the caller or of the runner.
    agent = json.loads(seen[0].read_text())
    for name, value in CLAUDE_KEYS.items():
        assert agent.get(name) == value, name
    assert not set(UNRELATED) & set(agent), agent
    assert "STONEFORGE_RUNNER_TOKEN" not in agent
    assert agent["HOME"] != env["HOME"]  # a private HOME
    assert {n for n, v in agent.items() if env.get(n) == v} <= {*CLAUDE_KEYS, *BASICS}


def test_a_missing_cli_stops_the_demo_with_one_line_saying_what_to_install(
    tmp_path: Path,
) -> None:
    env = {**base_env(tmp_path / "home"), **CLAUDE_KEYS}
    env["STONEFORGE_CLAUDE_BIN"] = str(tmp_path / "not-installed" / "claude")
    work = tmp_path / "demo"
    proc = demo(["--agent", "claude", "--work-dir", str(work)], env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert err.strip().count("\n") == 0, err
    assert "npm install -g @anthropic-ai/claude-code" in err
    assert "STONEFORGE_CLAUDE_BIN" in err
    assert not work.exists()  # nothing started


def test_a_cli_without_credentials_stops_the_demo_with_one_line_saying_what_to_export(
    tmp_path: Path,
) -> None:
    binary, record = stand_in(tmp_path / "bin")
    home = tmp_path / "home"
    # A `claude /login` kept under the caller's HOME: the agent's private HOME never has it.
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {}}')
    env = {**base_env(home), "STONEFORGE_CLAUDE_BIN": str(binary)}
    env["ANTHROPIC_BASE_URL"] = CLAUDE_KEYS["ANTHROPIC_BASE_URL"]  # a base URL is no login
    work = tmp_path / "demo"
    proc = demo(["--agent", "claude", "--work-dir", str(work)], env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert err.strip().count("\n") == 0, err
    assert "export ANTHROPIC_API_KEY" in err
    assert "private HOME" in err
    assert not work.exists()
    assert not any(record.iterdir())


def test_an_unsupported_version_is_refused_like_a_missing_cli(tmp_path: Path) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\necho 'codex-cli 0.99.0'\n")
    fake.chmod(0o755)
    problem = check_agent("codex", {"STONEFORGE_CODEX_BIN": str(fake), "OPENAI_API_KEY": "k"})
    assert problem is not None
    assert "0.99.0 is older than" in problem
    assert "npm install -g @openai/codex" in problem


@pytest.mark.parametrize(
    ("extra", "logged_in"),
    [
        ({}, False),
        ({"CODEX_HOME": "{home}"}, False),  # a config directory without a login in it
        ({"CODEX_HOME": "{home}", "auth": "{}"}, True),  # `codex login` saved auth.json there
        ({"OPENAI_API_KEY": "sk-k"}, True),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, False),
    ],
)
def test_codex_login_is_a_key_or_an_auth_file_in_the_codex_home_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], logged_in: bool
) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\necho 'codex-cli 0.171.0'\n")
    fake.chmod(0o755)
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    environ = {"STONEFORGE_CODEX_BIN": str(fake)}
    for name, value in extra.items():
        if name == "auth":
            (codex_home / "auth.json").write_text(value)
        else:
            environ[name] = value.format(home=codex_home)
    monkeypatch.setenv("STONEFORGE_CODEX_BIN", str(fake))
    problem = check_agent("codex", environ)
    assert (problem is None) is logged_in, problem
    if problem:
        assert "export OPENAI_API_KEY" in problem


@pytest.mark.parametrize("name", [n for n in known_agents() if n != "command"])
def test_agent_env_takes_exactly_the_declared_variables_that_are_set(name: str) -> None:
    adapter = get_adapter(name)
    declared = [*adapter.credential_env, *([adapter.bin_env] if adapter.bin_env else [])]
    environ = {n: f"value-of-{n}" for n in declared}
    environ.update(UNRELATED)
    environ.update({"PATH": "/usr/bin", "STONEFORGE_RUNNER_TOKEN": "runner-secret"})
    if declared:
        environ[declared[0]] = ""  # set but empty: not passed
    expected = {n: v for n, v in environ.items() if n in declared and v}
    assert agent_env(name, environ) == expected
    if name != "script":
        assert adapter.bin_env == f"STONEFORGE_{name.upper()}_BIN"
        assert adapter.credential_env


def test_the_command_agent_declares_its_command_and_the_variables_it_is_told_to_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STONEFORGE_AGENT_COMMAND", "/bin/true")
    monkeypatch.setenv("STONEFORGE_AGENT_COMMAND_ENV", "MY_KEY, OTHER")
    environ = {**os.environ, "MY_KEY": "k", "AWS_SECRET_ACCESS_KEY": "no"}
    assert agent_env("command", environ) == {
        "STONEFORGE_AGENT_COMMAND": "/bin/true",
        "STONEFORGE_AGENT_COMMAND_ENV": "MY_KEY, OTHER",
        "MY_KEY": "k",
    }


def test_the_script_agent_needs_nothing_and_passes_nothing() -> None:
    assert check_agent("script", {}) is None
    assert agent_env("script", {**UNRELATED, "STONEFORGE_SCRIPT_SLEEP_SCALE": "0"}) == {}


def test_an_unknown_agent_is_one_line_naming_the_known_ones() -> None:
    problem = check_agent("nope", {})
    assert problem is not None
    assert "unknown agent 'nope'" in problem
    assert "claude" in problem


def env_names(module: object) -> set[str]:
    """Every variable name among a module's constants (strings and tuples of strings)."""
    found: set[str] = set()
    for value in vars(module).values():
        items = value if isinstance(value, tuple) else (value,)
        found |= {v for v in items if isinstance(v, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", v)}
    return found


@pytest.mark.parametrize("name", [n for n in known_agents() if n not in ("command", "script")])
def test_what_an_adapter_copies_from_the_runners_environment_it_declares(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable ``build`` takes from the runner's environment is in ``credential_env``,
    so the demo's runner has all an agent needs once it has the declared ones. Planted: every
    variable name the adapter's module names in its constants, and some it does not."""
    from runner.agents.base import RunRequest

    adapter = get_adapter(name)
    module = sys.modules[type(adapter).__module__]
    candidates = {*env_names(module), *adapter.credential_env, *UNRELATED}
    candidates -= {adapter.bin_env}  # the executable itself
    for variable in candidates:
        monkeypatch.setenv(variable, f"planted-{variable}")
    req = RunRequest(task_id="t", prompt="p", workdir=tmp_path)
    env = get_adapter(name).build(req).env
    copied = {n for n, v in env.items() if v == f"planted-{n}"}
    assert copied, "the test planted nothing the adapter reads"
    assert copied <= set(adapter.credential_env)
