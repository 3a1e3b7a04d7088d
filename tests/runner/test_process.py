"""Agent process supervision: environment scrubbing, stdin, output pumping, group kills."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.agents.base import AgentEvent, Invocation, Outcome, Result
from runner.process import build_env, is_secret_name, supervise

DECOYS = {
    "STONEFORGE_RUNNER_TOKEN": "decoy-runner-token",
    "STONEFORGE_ANYTHING": "decoy-stoneforge",
    "GITHUB_TOKEN": "decoy-github-token",
    "GH_TOKEN": "decoy-gh-token",
    "GIT_CONFIG_COUNT": "7341",
    "GIT_CONFIG_KEY_0": "http.extraHeader",
    "GIT_CONFIG_VALUE_0": "Authorization: decoy-header",
    "MY_API_SECRET": "decoy-secret",
    "APP_PRIVATE_KEY": "decoy-private-key",
    "DB_PASSWORD": "decoy-password",
    "installation_token": "decoy-lowercase",
    "UNRELATED_SETTING": "decoy-unrelated",
}


class LineParser:
    """A minimal StreamParser that records what it is fed."""

    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def feed_stdout(self, line: str) -> list[AgentEvent]:
        self.stdout.append(line)
        return [AgentEvent("text", {"text": line[:20]})]

    def feed_stderr(self, line: str) -> list[AgentEvent]:
        self.stderr.append(line)
        return []

    def liveness_hint(self) -> float | None:
        return None

    def finish(self, exit_code: int | None, killed_by: str | None) -> Result:
        return Result(Outcome.FAILED, killed_by or "x", exit_code=exit_code)


def py(
    code: str,
    cwd: Path,
    *,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    allowed: frozenset[str] = frozenset(),
) -> Invocation:
    return Invocation(
        argv=[sys.executable, "-c", textwrap.dedent(code)],
        env=env or {},
        cwd=cwd,
        stdin=stdin,
        allowed_secrets=allowed,
    )


async def test_agent_env_has_no_runner_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in DECOYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-allowed")
    dump = tmp_path / "env.json"
    code = f"import json, os; open({str(dump)!r}, 'w').write(json.dumps(dict(os.environ)))"
    extra = {
        "ANTHROPIC_API_KEY": os.environ["ANTHROPIC_API_KEY"],
        "SNEAKY_TOKEN": "decoy-extra",
        "GH_TOKEN": "decoy-extra-gh",
        "AGENT_MODE": "fast",
    }
    inv = py(code, tmp_path, env=extra, allowed=frozenset({"ANTHROPIC_API_KEY"}))
    exit_code, killed_by = await supervise(inv, LineParser(), timeout_s=10, stall_timeout_s=10)
    assert (exit_code, killed_by) == (0, None)
    env = json.loads(dump.read_text())
    text = json.dumps(env)
    for value in [*DECOYS.values(), "decoy-extra", "decoy-extra-gh"]:
        assert value not in text
    assert env["ANTHROPIC_API_KEY"] == "sk-allowed"
    assert env["AGENT_MODE"] == "fast"
    assert env["TERM"] == "dumb"
    home = Path(env["HOME"])
    assert home != Path.home()
    assert env["TMPDIR"].startswith(env["HOME"])
    assert not os.path.exists(home), "the private HOME is removed"  # noqa: ASYNC240
    assert set(env) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "TERM",
        "HOME",
        "TMPDIR",
        "ANTHROPIC_API_KEY",
        "AGENT_MODE",
        "LC_CTYPE",
        "PWD",
    }  # python may add LC_CTYPE


def test_secret_names() -> None:
    for name in [
        "GITHUB_TOKEN",
        "X_Token",
        "STONEFORGE_BOT_URL",
        "GIT_CONFIG_GLOBAL",
        "A_PASSWORD",
    ]:
        assert is_secret_name(name)
    for name in ["PATH", "ANTHROPIC_BASE_URL", "FAKE_CLAUDE_SCENARIO"]:
        assert not is_secret_name(name)
    env = build_env(
        {"CLAUDE_CODE_OAUTH_TOKEN": "t"},
        home=Path("/h"),
        base={"PATH": "/bin"},
        allowed_secrets=frozenset({"CLAUDE_CODE_OAUTH_TOKEN"}),
    )
    assert env == {
        "PATH": "/bin",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "HOME": "/h",
        "TMPDIR": "/h/tmp",
        "CLAUDE_CODE_OAUTH_TOKEN": "t",
    }


async def test_stdin_is_written_then_closed(tmp_path: Path) -> None:
    parser = LineParser()
    inv = py(
        "import sys; data = sys.stdin.read(); print(len(data)); print(data[:5])",
        tmp_path,
        stdin=b"hello" * 100_000,
    )
    exit_code, killed_by = await supervise(inv, parser, timeout_s=10, stall_timeout_s=5)
    assert (exit_code, killed_by) == (0, None)
    assert parser.stdout == ["500000", "hello"]


async def test_no_stdin_means_devnull(tmp_path: Path) -> None:
    parser = LineParser()
    inv = py("import sys; print(repr(sys.stdin.read()))", tmp_path)
    assert await supervise(inv, parser, timeout_s=10, stall_timeout_s=5) == (0, None)
    assert parser.stdout == ["''"]


async def test_huge_lines_and_partial_last_line(tmp_path: Path) -> None:
    parser = LineParser()
    code = """
        import sys
        sys.stdout.write("x" * 3_000_000 + "\\n")
        sys.stderr.write("err line\\n")
        sys.stdout.write("tail-without-newline")
    """
    assert await supervise(py(code, tmp_path), parser, timeout_s=10, stall_timeout_s=5) == (0, None)
    assert [len(line) for line in parser.stdout] == [3_000_000, len("tail-without-newline")]
    assert parser.stderr == ["err line"]


async def test_stall_kills_whole_group_including_grandchildren(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
    """
    started = time.monotonic()
    exit_code, killed_by = await supervise(
        py(code, tmp_path), LineParser(), timeout_s=30, stall_timeout_s=0.8, kill_grace_s=1
    )
    assert killed_by == "stalled"
    assert exit_code == -15
    assert time.monotonic() - started < 6
    assert not _alive(int(pidfile.read_text()))


async def test_orphan_holding_pipes_does_not_hang(tmp_path: Path) -> None:
    # The agent exits at once but leaves a background child holding stdout open.
    code = """
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("bye", flush=True)
    """
    started = time.monotonic()
    assert await supervise(py(code, tmp_path), LineParser(), timeout_s=30, stall_timeout_s=30) == (
        0,
        None,
    )
    assert time.monotonic() - started < 6


async def test_cancel_event_and_task_cancellation(tmp_path: Path) -> None:
    cancel = asyncio.Event()
    code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
    task = asyncio.create_task(
        supervise(
            py(code, tmp_path),
            LineParser(),
            timeout_s=30,
            stall_timeout_s=30,
            kill_grace_s=1,
            cancel=cancel,
        )
    )
    await asyncio.sleep(0.5)
    cancel.set()
    assert (await asyncio.wait_for(task, 5))[1] == "cancelled"

    pidfile = tmp_path / "pid"
    code = f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)"
    task = asyncio.create_task(
        supervise(
            py(code, tmp_path), LineParser(), timeout_s=30, stall_timeout_s=30, kill_grace_s=1
        )
    )
    for _ in range(50):
        await asyncio.sleep(0.1)
        if pidfile.exists() and pidfile.read_text():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(int(pidfile.read_text()))


async def test_transcript_is_teed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    inv = py("import sys; print('out'); print('err', file=sys.stderr)", tmp_path)
    await supervise(inv, LineParser(), timeout_s=10, stall_timeout_s=5, transcript_dir=logs)
    assert (logs / "stdout.jsonl").read_text() == "out\n"
    assert (logs / "stderr.log").read_text() == "err\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper counts as dead.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
