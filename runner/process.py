"""The runner's process supervisor: every child process a job starts runs through here.

Agents (``run_agent``, ``supervise``), the repository's setup command (``runner.setup``) and its
test command (``run_command``) get the same treatment:

- a session of their own (one process group), so a kill reaches whatever they started;
- a wall-clock timeout, a no-output (stall) timeout and a cancel flag, checked together; any of
  them sends SIGTERM to the whole group, then SIGKILL after a grace period (``KilledBy`` says
  which);
- once the leader exits, SIGKILL to the group, so a background child holding the pipes open
  cannot stall the runner;
- the group recorded in ``pid_dir`` while it runs, so a runner restarted after SIGKILL stops
  what its predecessor left behind (``reap_orphans``).

Output: an agent's stdout and stderr go line by line into its adapter's parser (an
``OutputSink``, ``runner.agents.base``) and, optionally, a transcript on disk. A command's
(stderr merged into stdout, as a terminal shows them) goes into ``CappedOutput``, which keeps its
first and last bytes and drops the middle with a marker: memory stays bounded however much it
prints.

The agent runs with an environment built from scratch (``build_env``), so it never sees the
runner token, installation tokens or anything else secret from the runner's environment except
the credentials its adapter explicitly allows; a command gets exactly the environment its caller
gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

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
HEAD_BYTES = 1_000  # of a command's output, kept from its start ...
TAIL_BYTES = 2_800  # ... and from its end (with the marker, within runner.job.TAIL_CHARS)
SECRET_MARKERS = ("TOKEN", "SECRET", "PRIVATE_KEY", "PASSWORD")
BLOCKED_NAMES = frozenset({"GITHUB_TOKEN", "GH_TOKEN"})
BLOCKED_PREFIXES = ("STONEFORGE_", "GIT_CONFIG_")
#: names under a blocked prefix that the runner itself gives an agent (no secret: a path)
RUNNER_NAMES = frozenset({"STONEFORGE_PLAN_FILE"})
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL")
POLL_S = 0.05


class KilledBy(StrEnum):
    """Why the supervisor stopped a process (a ``str``: adapters' parsers compare it to text)."""

    TIMEOUT = "timeout"  # the wall clock
    STALLED = "stalled"  # no output for the stall timeout
    CANCELLED = "cancelled"  # the cancel flag was set

    def words(self, *, timeout_s: float, stall_timeout_s: float | None) -> str:
        """What happened, for a person: "timed out after 600s", ..."""
        if self is KilledBy.TIMEOUT:
            return f"timed out after {timeout_s:g}s"
        if self is KilledBy.STALLED:
            return f"printed nothing for {stall_timeout_s or 0:g}s"
        return "was cancelled"


class Flag(Protocol):
    """A cancel flag: an ``asyncio.Event``, or a ``threading.Event`` for a caller in a thread.

    The supervisor polls it, so one set on another thread's event loop is seen too.
    """

    def is_set(self) -> bool: ...


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    if upper in RUNNER_NAMES:
        return False
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


@contextlib.contextmanager
def private_home(prefix: str) -> Iterator[Path]:
    """A fresh HOME (with ``tmp/`` for TMPDIR) for one process, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        (home / "tmp").mkdir()
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole process group; one that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# -- output ---------------------------------------------------------------------------------


class _ChunkSink(Protocol):
    def feed(self, chunk: bytes) -> None: ...
    def close(self) -> None: ...


class _Lines:
    """Splits a byte stream into lines for a callback (a line over `max_line` comes in pieces)."""

    def __init__(self, on_line: Callable[[str], None], max_line: int = MAX_LINE) -> None:
        self.on_line = on_line
        self.max_line = max_line
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        buffer = self.buffer
        buffer.extend(chunk)
        while (end := buffer.find(b"\n")) != -1 or len(buffer) > self.max_line:
            cut = end if end != -1 else self.max_line
            self.on_line(buffer[:cut].decode("utf-8", "replace").rstrip("\r"))
            del buffer[: cut + 1 if end != -1 else cut]

    def close(self) -> None:
        if self.buffer:  # a final partial line at EOF
            self.on_line(self.buffer.decode("utf-8", "replace"))
            self.buffer.clear()


class CappedOutput:
    """A command's output with bounded memory: its first `head` and last `tail` bytes.

    What falls between is counted, not kept; ``text()`` puts a marker where it was.
    """

    def __init__(self, head: int = HEAD_BYTES, tail: int = TAIL_BYTES) -> None:
        self.head_cap = head
        self.tail_cap = tail
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0  # bytes seen
        self.dropped = 0  # bytes seen but not kept

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        if (excess := len(self._tail) - self.tail_cap) > 0:
            del self._tail[:excess]
            self.dropped += excess

    def close(self) -> None:
        pass

    def text(self) -> str:
        head = self._head.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} bytes of output dropped ...]\n{tail}"


# -- one supervised process -----------------------------------------------------------------


@dataclass
class _Child:
    """What to spawn and where its output goes."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdout: _ChunkSink
    stderr: _ChunkSink | None  # None: stderr is merged into stdout
    stdin: bytes | None = None  # None -> DEVNULL; bytes -> written, then stdin is closed
    liveness_hint: Callable[[], float | None] = lambda: None
    tee_stdout: Path | None = None
    tee_stderr: Path | None = None


async def _supervise(
    child: _Child,
    *,
    timeout_s: float,
    stall_timeout_s: float,
    kill_grace_s: float,
    cancel: Flag | None,
    pid_dir: Path | None,
) -> tuple[int | None, KilledBy | None]:
    """Spawn `child` in a session of its own and watch it; (exit code, killed_by)."""
    proc = await asyncio.create_subprocess_exec(
        *child.argv,
        cwd=child.cwd,
        env=child.env,
        stdin=asyncio.subprocess.PIPE if child.stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if child.stderr is not None else asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    pid_file = _record_group(pid_dir, proc.pid, child.cwd)
    last_output = time.monotonic()

    def touched() -> None:
        nonlocal last_output
        last_output = time.monotonic()

    pumps = [asyncio.create_task(_pump(proc.stdout, child.stdout, touched, child.tee_stdout))]
    if child.stderr is not None:
        assert proc.stderr is not None
        pumps.append(
            asyncio.create_task(_pump(proc.stderr, child.stderr, touched, child.tee_stderr))
        )
    writer = (
        asyncio.create_task(_write_stdin(proc, child.stdin)) if child.stdin is not None else None
    )
    killed_by: KilledBy | None = None
    try:
        killed_by = await _watch(
            proc, child.liveness_hint, timeout_s, stall_timeout_s, lambda: last_output, cancel
        )
        if killed_by:
            await _terminate(proc, kill_grace_s)
    except asyncio.CancelledError:
        await _terminate(proc, kill_grace_s)
        raise
    finally:
        # Orphans left in the group (background shells, servers) would keep the pipes open.
        kill_group(proc.pid, signal.SIGKILL)
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        if writer:
            writer.cancel()
            pumps.append(writer)
        await _drain(pumps)
    return proc.returncode, killed_by


async def _pump(
    stream: asyncio.StreamReader,
    sink: _ChunkSink,
    on_bytes: Callable[[], None],
    tee: Path | None,
) -> None:
    out = tee.open("ab") if tee else None
    try:
        while chunk := await stream.read(CHUNK):
            on_bytes()
            if out:
                out.write(chunk)
                out.flush()  # the transcript can be followed while the agent runs
            sink.feed(chunk)
        sink.close()
    finally:
        if out:
            out.close()


def _record_group(pid_dir: Path | None, pgid: int, cwd: Path) -> Path | None:
    if pid_dir is None:
        return None
    pid_dir.mkdir(parents=True, exist_ok=True)
    path = pid_dir / str(pgid)
    path.write_text(str(cwd))
    return path


def reap_orphans(pid_dir: Path) -> list[int]:
    """Kill the process groups (agents, commands) a previous runner recorded and never cleaned up.

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
            kill_group(pgid, signal.SIGKILL)
            killed.append(pgid)
        entry.unlink(missing_ok=True)
    return killed


async def _write_stdin(proc: asyncio.subprocess.Process, data: bytes) -> None:
    # A task of its own: a child that never reads stdin must not block the timers.
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        log.debug("child closed stdin early")
    finally:
        proc.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.wait_closed()


async def _watch(
    proc: asyncio.subprocess.Process,
    liveness_hint: Callable[[], float | None],
    timeout_s: float,
    stall_timeout_s: float,
    last_output: Callable[[], float],
    cancel: Flag | None,
) -> KilledBy | None:
    # Poll `returncode`: asyncio's `wait()` also waits for the pipes to close, which an orphaned
    # grandchild holding stdout open would delay forever.
    deadline = time.monotonic() + timeout_s
    while proc.returncode is None:
        now = time.monotonic()
        stall_deadline = last_output() + stall_timeout_s + (liveness_hint() or 0.0)
        if cancel is not None and cancel.is_set():
            return KilledBy.CANCELLED
        if now >= deadline:
            return KilledBy.TIMEOUT
        if now >= stall_deadline:
            return KilledBy.STALLED
        await asyncio.sleep(min(POLL_S, deadline - now, stall_deadline - now))
    return None


async def _terminate(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the whole group, wait `grace_s`, then SIGKILL it."""
    kill_group(proc.pid, signal.SIGTERM)
    if not await _exited(proc, grace_s):
        log.info("child ignored SIGTERM; sending SIGKILL", extra={"pid": proc.pid})
    kill_group(proc.pid, signal.SIGKILL)
    await _exited(proc, math.inf)


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
            log.error("output_pump_failed", exc_info=outcome)


# -- agents ---------------------------------------------------------------------------------


async def supervise(
    inv: Invocation,
    parser: OutputSink,
    *,
    timeout_s: float,
    stall_timeout_s: float,
    kill_grace_s: float = 10.0,
    on_event: Callable[[AgentEvent], None] | None = None,
    transcript_dir: Path | None = None,
    cancel: Flag | None = None,
    pid_dir: Path | None = None,
    home: Path | None = None,
) -> tuple[int | None, KilledBy | None]:
    """Run the agent `inv` to completion, its output into `parser`; return (exit_code, killed_by).

    With `pid_dir`, the agent's process group is recorded there while it runs (see the module
    doc). `home` is the agent's HOME, kept by the caller (a resumed session lives there); by
    default a private one is made and removed afterwards.

    `killed_by` is None, TIMEOUT (wall clock), STALLED (no output for `stall_timeout_s`,
    extended by the parser's liveness hint) or CANCELLED (`cancel` was set). If this coroutine
    itself is cancelled, the group is killed and CancelledError propagates.
    """
    kept = contextlib.nullcontext(home) if home is not None else None  # the caller's: kept
    with kept or private_home("stoneforge-agent-home-") as home:
        _prepare(home, inv, transcript_dir)
        env = build_env(inv.env, home=home, allowed_secrets=inv.allowed_secrets)
        child = _Child(
            argv=inv.argv,
            cwd=inv.cwd,
            env=env,
            stdout=_Lines(_events(parser.feed_stdout, on_event)),
            stderr=_Lines(_events(parser.feed_stderr, on_event)),
            stdin=inv.stdin,
            liveness_hint=parser.liveness_hint,
            tee_stdout=transcript_dir / "stdout.jsonl" if transcript_dir else None,
            tee_stderr=transcript_dir / "stderr.log" if transcript_dir else None,
        )
        return await _supervise(
            child,
            timeout_s=timeout_s,
            stall_timeout_s=stall_timeout_s,
            kill_grace_s=kill_grace_s,
            cancel=cancel,
            pid_dir=pid_dir,
        )


def _events(
    feed: Callable[[str], list[AgentEvent]], on_event: Callable[[AgentEvent], None] | None
) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        for event in feed(line):
            if on_event:
                on_event(event)

    return on_line


def _prepare(home: Path, inv: Invocation, transcript_dir: Path | None) -> None:
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    if transcript_dir:
        transcript_dir.mkdir(parents=True, exist_ok=True)
    for path, content in inv.files.items():
        target = path if path.is_absolute() else home / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


async def run_agent(
    adapter: AgentAdapter,
    req: RunRequest,
    *,
    timeout_s: float,
    stall_timeout_s: float,
    kill_grace_s: float = 10.0,
    on_event: Callable[[AgentEvent], None] | None = None,
    transcript_dir: Path | None = None,
    cancel: Flag | None = None,
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
    return parser.finish(exit_code, killed_by.value if killed_by else None)  # plain text


# -- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """A setup or test command's run."""

    exit_code: int | None  # None when the supervisor killed it; negative when a signal ended it
    killed_by: KilledBy | None
    output_tail: str  # stdout and stderr interleaved, capped: head and tail (`CappedOutput`)
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_by is None

    @property
    def timed_out(self) -> bool:
        """Killed by the wall clock or the no-output timer (not cancelled)."""
        return self.killed_by in (KilledBy.TIMEOUT, KilledBy.STALLED)


async def run_command(
    command: str,
    cwd: Path,
    *,
    env: Mapping[str, str],
    timeout_s: float,
    stall_timeout_s: float | None = None,
    kill_grace_s: float = 5.0,
    cancel: Flag | None = None,
    pid_dir: Path | None = None,
    head_bytes: int = HEAD_BYTES,
    tail_bytes: int = TAIL_BYTES,
) -> CommandResult:
    """``/bin/sh -c command`` in `cwd` with exactly `env`, supervised as an agent is (timeouts,
    cancel, the group killed, `pid_dir`); its output capped to `head_bytes` + `tail_bytes`.

    `stall_timeout_s` None: no no-output timer. A shell that cannot start (a missing `cwd`) is
    a result with no exit code and the error as its output.
    """
    output = CappedOutput(head_bytes, tail_bytes)
    child = _Child(argv=["/bin/sh", "-c", command], cwd=cwd, env=dict(env), stdout=output,
                   stderr=None)  # fmt: skip
    started = time.monotonic()
    try:
        code, killed_by = await _supervise(
            child,
            timeout_s=timeout_s,
            stall_timeout_s=math.inf if stall_timeout_s is None else stall_timeout_s,
            kill_grace_s=kill_grace_s,
            cancel=cancel,
            pid_dir=pid_dir,
        )
    except OSError as exc:
        return CommandResult(None, None, f"could not start /bin/sh in {cwd}: {exc}", 0.0)
    seconds = round(time.monotonic() - started, 3)
    return CommandResult(None if killed_by else code, killed_by, output.text(), seconds)
