"""Supervise one agent process: spawn, pump output into a parser, enforce timeouts, kill the group.

The agent runs in its own session (process group) with an environment built from scratch, so it
never sees the runner token, installation tokens or anything else secret from the runner's
environment except the credentials its adapter explicitly allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from runner.agents.base import (
    AgentAdapter,
    AgentEvent,
    Invocation,
    Outcome,
    OutputSink,
    Result,
    RunRequest,
)

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024 * 1024  # longer lines are handed over in pieces; JSON parsing then fails
SECRET_MARKERS = ("TOKEN", "SECRET", "PRIVATE_KEY", "PASSWORD")
BLOCKED_NAMES = frozenset({"GITHUB_TOKEN", "GH_TOKEN"})
BLOCKED_PREFIXES = ("STONEFORGE_", "GIT_CONFIG_")
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL")
POLL_S = 0.05


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return (
        upper in BLOCKED_NAMES
        or upper.startswith(BLOCKED_PREFIXES)
        or any(marker in upper for marker in SECRET_MARKERS)
    )


def build_env(
    extra: Mapping[str, str],
    *,
    home: Path,
    allowed_secrets: frozenset[str] = frozenset(),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The agent's environment: a few safe basics from `base`, a private HOME, and `extra`."""
    source = os.environ if base is None else base
    env = {name: source[name] for name in PASSED_THROUGH if name in source}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    env["TERM"] = "dumb"
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home / "tmp")
    for name, value in extra.items():
        if is_secret_name(name) and name not in allowed_secrets:
            log.warning("agent_env_dropped variable=%s", name)
            continue
        env[name] = value
    return env


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _pump(
    stream: asyncio.StreamReader,
    on_line: Callable[[str], None],
    on_bytes: Callable[[], None],
    tee: Path | None,
) -> None:
    buffer = bytearray()
    sink = tee.open("ab") if tee else None
    try:
        while chunk := await stream.read(CHUNK):
            on_bytes()
            if sink:
                sink.write(chunk)
                sink.flush()  # the transcript can be followed while the agent runs
            buffer.extend(chunk)
            while (end := buffer.find(b"\n")) != -1 or len(buffer) > MAX_LINE:
                cut = end if end != -1 else MAX_LINE
                on_line(buffer[:cut].decode("utf-8", "replace").rstrip("\r"))
                del buffer[: cut + 1 if end != -1 else cut]
        if buffer:  # a final partial line at EOF
            on_line(buffer.decode("utf-8", "replace"))
    finally:
        if sink:
            sink.close()


async def supervise(
    inv: Invocation,
    parser: OutputSink,
    *,
    timeout_s: float,
    stall_timeout_s: float,
    kill_grace_s: float = 10.0,
    on_event: Callable[[AgentEvent], None] | None = None,
    transcript_dir: Path | None = None,
    cancel: asyncio.Event | None = None,
    pid_dir: Path | None = None,
    home: Path | None = None,
) -> tuple[int | None, str | None]:
    """Run `inv` to completion; return (exit_code, killed_by).

    With `pid_dir`, the agent's process group is recorded there while it runs, so a runner
    restarted after SIGKILL can stop agents its predecessor left behind (`reap_orphans`).
    `home` is the agent's HOME, kept by the caller (a resumed session lives there); by default
    a private one is made and removed afterwards.

    `killed_by` is None, "timeout" (wall clock), "stalled" (no output for `stall_timeout_s`,
    extended by the parser's liveness hint) or "cancelled" (`cancel` was set). If this coroutine
    itself is cancelled, the group is killed and CancelledError propagates.
    """
    own_home = home is None
    home = Path(tempfile.mkdtemp(prefix="stoneforge-agent-home-")) if home is None else home
    try:
        _prepare(home, inv, transcript_dir)
        env = build_env(inv.env, home=home, allowed_secrets=inv.allowed_secrets)
        return await _run(
            inv,
            parser,
            env,
            timeout_s,
            stall_timeout_s,
            kill_grace_s,
            on_event,
            transcript_dir,
            cancel,
            pid_dir,
        )
    finally:
        if own_home:
            shutil.rmtree(home, ignore_errors=True)


def _prepare(home: Path, inv: Invocation, transcript_dir: Path | None) -> None:
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    if transcript_dir:
        transcript_dir.mkdir(parents=True, exist_ok=True)
    for path, content in inv.files.items():
        target = path if path.is_absolute() else home / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


async def _run(
    inv: Invocation,
    parser: OutputSink,
    env: dict[str, str],
    timeout_s: float,
    stall_timeout_s: float,
    kill_grace_s: float,
    on_event: Callable[[AgentEvent], None] | None,
    transcript_dir: Path | None,
    cancel: asyncio.Event | None,
    pid_dir: Path | None = None,
) -> tuple[int | None, str | None]:
    proc = await asyncio.create_subprocess_exec(
        *inv.argv,
        cwd=inv.cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE if inv.stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    pid_file = _record_group(pid_dir, proc.pid, inv.cwd)
    last_output = time.monotonic()

    def touched() -> None:
        nonlocal last_output
        last_output = time.monotonic()

    def handle(feed: Callable[[str], list[AgentEvent]]) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            for event in feed(line):
                if on_event:
                    on_event(event)

        return on_line

    pumps = [
        asyncio.create_task(
            _pump(proc.stdout, handle(parser.feed_stdout), touched, _tee(transcript_dir, "stdout"))
        ),
        asyncio.create_task(
            _pump(proc.stderr, handle(parser.feed_stderr), touched, _tee(transcript_dir, "stderr"))
        ),
    ]
    writer = asyncio.create_task(_write_stdin(proc, inv.stdin)) if inv.stdin is not None else None
    killed_by: str | None = None
    try:
        killed_by = await _watch(
            proc, parser, timeout_s, stall_timeout_s, lambda: last_output, cancel
        )
        if killed_by:
            await _terminate(proc, kill_grace_s)
    except asyncio.CancelledError:
        await _terminate(proc, kill_grace_s)
        raise
    finally:
        # Orphans left in the group (background shells, servers) would keep the pipes open.
        _kill_group(proc.pid, signal.SIGKILL)
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        if writer:
            writer.cancel()
            pumps.append(writer)
        await _drain(pumps)
    return proc.returncode, killed_by


def _record_group(pid_dir: Path | None, pgid: int, cwd: Path) -> Path | None:
    if pid_dir is None:
        return None
    pid_dir.mkdir(parents=True, exist_ok=True)
    path = pid_dir / str(pgid)
    path.write_text(str(cwd))
    return path


def reap_orphans(pid_dir: Path) -> list[int]:
    """Kill the agent process groups a previous runner recorded and never cleaned up.

    A group is killed only while its leader still works in the directory recorded for it, so
    a recycled pid that now belongs to something else is left alone.
    """
    killed: list[int] = []
    if not pid_dir.is_dir():
        return killed
    for entry in pid_dir.iterdir():
        try:
            pgid = int(entry.name)
            recorded = entry.read_text().strip()
            cwd = os.readlink(f"/proc/{pgid}/cwd")
        except (ValueError, OSError):
            entry.unlink(missing_ok=True)
            continue
        if cwd == recorded or cwd.startswith(recorded.rstrip("/") + "/"):
            _kill_group(pgid, signal.SIGKILL)
            killed.append(pgid)
        entry.unlink(missing_ok=True)
    return killed


def _tee(transcript_dir: Path | None, stream: str) -> Path | None:
    if transcript_dir is None:
        return None
    return transcript_dir / ("stdout.jsonl" if stream == "stdout" else "stderr.log")


async def _write_stdin(proc: asyncio.subprocess.Process, data: bytes) -> None:
    # A task of its own: an agent that never reads stdin must not block the timers.
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        log.debug("agent closed stdin early")
    finally:
        proc.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.wait_closed()


async def _watch(
    proc: asyncio.subprocess.Process,
    parser: OutputSink,
    timeout_s: float,
    stall_timeout_s: float,
    last_output: Callable[[], float],
    cancel: asyncio.Event | None,
) -> str | None:
    # Poll `returncode`: asyncio's `wait()` also waits for the pipes to close, which an orphaned
    # grandchild holding stdout open would delay forever.
    deadline = time.monotonic() + timeout_s
    while proc.returncode is None:
        now = time.monotonic()
        stall_deadline = last_output() + stall_timeout_s + (parser.liveness_hint() or 0.0)
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if now >= deadline:
            return "timeout"
        if now >= stall_deadline:
            return "stalled"
        await asyncio.sleep(min(POLL_S, deadline - now, stall_deadline - now))
    return None


async def _terminate(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the whole group, wait `grace_s`, then SIGKILL it."""
    _kill_group(proc.pid, signal.SIGTERM)
    if not await _exited(proc, grace_s):
        log.info("agent ignored SIGTERM; sending SIGKILL", extra={"pid": proc.pid})
    _kill_group(proc.pid, signal.SIGKILL)
    await _exited(proc, float("inf"))


async def _exited(proc: asyncio.subprocess.Process, within_s: float) -> bool:
    # Poll: `proc.wait()` also waits for the pipes, which orphans in the group may hold open.
    deadline = time.monotonic() + within_s
    while proc.returncode is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)
    return proc.returncode is not None


async def _drain(tasks: list[asyncio.Task[None]], grace_s: float = 5.0) -> None:
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.error("agent_output_pump_failed", exc_info=outcome)


async def run_agent(
    adapter: AgentAdapter,
    req: RunRequest,
    *,
    timeout_s: float,
    stall_timeout_s: float,
    kill_grace_s: float = 10.0,
    on_event: Callable[[AgentEvent], None] | None = None,
    transcript_dir: Path | None = None,
    cancel: asyncio.Event | None = None,
    pid_dir: Path | None = None,
    home: Path | None = None,
) -> Result:
    """Build, supervise and classify one agent run (`home`: see `supervise`)."""
    inv = adapter.build(req)
    parser = adapter.new_parser()
    try:
        exit_code, killed_by = await supervise(
            inv,
            parser,
            timeout_s=timeout_s,
            stall_timeout_s=stall_timeout_s,
            kill_grace_s=kill_grace_s,
            on_event=on_event,
            transcript_dir=transcript_dir,
            cancel=cancel,
            pid_dir=pid_dir,
            home=home,
        )
    except OSError as exc:  # the agent CLI is missing or not executable
        detail = f"could not start {inv.argv[0]}: {exc}"
        return Result(Outcome.FAILED, "spawn_failed", detail=detail)
    return parser.finish(exit_code, killed_by)
