"""Run one adapter's real CLI the way the runner does (``runner.process.run_agent``), in a git
worktree, under the network watch, against a scripted model server."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runner.agents.base import AgentAdapter, AgentEvent, Result, RunRequest
from runner.process import run_agent
from tests.conformance.clis import require
from tests.models import netwatch


def watched(cli: str, root: Path) -> Path:
    """The pinned ``cli`` wrapped in the network watch, logging its connects to ``root/net.log``
    (strace missing: skipped on a developer's machine, failed under CI, as a missing CLI is)."""
    binary = require(cli)
    if not netwatch.available():
        problem = "strace is not installed: the network watch needs it"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(problem)
        pytest.skip(problem)
    return netwatch.wrap(binary, root / "net.log", root / f"{cli}-watched")


def git_workdir(root: Path) -> Path:
    """A small git repository with one commit, as a task's worktree would be."""
    workdir = root / "wt"
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(workdir)], check=True)
    (workdir / "README.md").write_text("# sample\n")
    subprocess.run(["git", "-C", str(workdir), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(workdir),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "init",
        ],
        check=True,
    )
    return workdir


@dataclass
class Run:
    result: Result
    events: list[AgentEvent] = field(default_factory=list)
    strays: list[tuple[str, int]] = field(default_factory=list)
    transcript_dir: Path | None = None


async def run_cli(
    adapter: AgentAdapter,
    req: RunRequest,
    *,
    home: Path,
    netlog: Path | None = None,
    allowed_ports: set[int] | None = None,
    timeout_s: float = 120.0,
    stall_timeout_s: float = 60.0,
    kill_grace_s: float = 3.0,
) -> Run:
    """Run ``req`` through ``adapter`` with the runner's supervisor; ``home`` is kept (resume)."""
    events: list[AgentEvent] = []
    transcripts = home.parent / f"{home.name}-transcript"
    result = await run_agent(
        adapter,
        req,
        timeout_s=timeout_s,
        stall_timeout_s=stall_timeout_s,
        kill_grace_s=kill_grace_s,
        on_event=events.append,
        transcript_dir=transcripts,
        home=home,
    )
    strays = netwatch.strays(netlog, allowed_ports or set()) if netlog else []
    return Run(result, events, strays, transcripts)
