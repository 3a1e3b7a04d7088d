"""`stoneforge demo --agent CLI` with the real, pinned CLI: the sprint's scenes (``--only``: a
review round, a red check fixed, a conflict resolved, and their blockers), every task merged.

The command line runs as its own process, with an environment made from scratch: the variables a
user of that CLI would export (its key and base URL, which the adapter declares), its executable
override, and an unrelated secret. The model behind the CLI is a scripted server on loopback
playing ``tests.models.sprint.SprintPlaybook``: each task's first call is answered with the CLI's
shell tool applying the issue's ``stoneforge-script`` edits (or the reviewer's, on the revision
the demo's review asks for, the script's fix for red checks, a keep-both resolution of the
conflicted files), the next with the script's summary. The runner commits and pushes,
the bot opens the pull requests, fakehub's CI runs the sample's tests and the steward merges.

The executable override is a launcher written here: it records the environment the CLI was given,
sets what the CLI needs that no adapter passes (its own configuration: where the model server is,
update checks off) and runs the real binary under the network watch.

One entry of ``TARGETS`` per CLI with a shell tool (aider has none: it edits through its reply's
text, which this playbook does not write). A CLI whose adapter or scripted server module is not in
the tree yet is skipped; adding a CLI is one entry (its server, its shell tool, what a user
exports). Measured on 2 busy cores (load 5-7): claude 34 s, codex 37 s, gemini 45 s, copilot 60 s,
opencode 85 s (its start-up, several seconds a run, dominates).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from demo.sample import SPRINT, sprint_subset
from runner.agents import known_agents
from runner.agents.script_agent import parse_script
from tests.conformance.clis import require
from tests.models import netwatch
from tests.models.scenario import Dialect
from tests.models.server import ScriptedServer
from tests.models.sprint import SprintPlaybook

pytestmark = [pytest.mark.slow, pytest.mark.conformance]

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-demo-sprint-key"  # what the user exports; the server must see it
UNRELATED = {"AWS_SECRET_ACCESS_KEY": "aws-secret-never-passed", "GH_TOKEN": "ghp_never_passed"}
DEMO_TIMEOUT_S = 240

#: The sprint's scenes and what they are blocked by (``stoneforge demo --only``): a maintainer's
#: review (ratelimit), a red check fixed (logging), and a conflict resolved (jwt, fix-tests).
SCENE_KEYS = ("logging", "jwt", "fix-tests")
SCENES = sprint_subset(SPRINT, list(SCENE_KEYS))


def no_tools(body: dict[str, Any]) -> str | None:
    """A request without tools is a side call (a title, a summary): answered apart."""
    return None if body.get("tools") else "Sprint task"


def _write(path: str, content: str) -> tuple[str, dict[str, Any]]:
    raise AssertionError("the sprint playbook edits through the shell tool only")


@dataclass(frozen=True)
class Target:
    """How one CLI works the sprint against its scripted server."""

    server: str  # "module:Class" of its scripted server (tests/models/)
    shell: Callable[[str], tuple[str, dict[str, Any]]]  # its shell tool call, in its dialect
    # What a user of the CLI exports (the adapter's declared variables); url -> variables.
    exported: Callable[[str], dict[str, str]]
    # What the launcher sets for the CLI itself (its own config); (url, scratch dir) -> variables.
    own_config: Callable[[str, Path], dict[str, str]] = lambda url, where: {}
    server_kwargs: dict[str, Any] = field(default_factory=dict)
    # Loopback ports it may reach besides the model server, with the reason.
    allowed_ports: dict[int, str] = field(default_factory=dict)


def opencode_config(url: str) -> dict[str, str]:
    """What an opencode user exports: the key and a provider config of their own."""
    model = {"name": "Test", "cost": {"input": 3, "output": 15}, "limit": {"context": 200000}}
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Local",
        "options": {"baseURL": f"{url}/v1", "apiKey": "{env:OPENAI_API_KEY}"},
        "models": {"test-model": {**model, "limit": {"context": 200000, "output": 8192}}},
    }
    config = {
        "provider": {"local": provider},
        "model": "local/test-model",
        "small_model": "local/test-model",
        "autoupdate": False,
        "share": "disabled",
    }
    return {"OPENAI_API_KEY": KEY, "OPENCODE_CONFIG_CONTENT": json.dumps(config)}


TARGETS: dict[str, Target] = {
    "opencode": Target(
        server="tests.models.openai_chat:ChatCompletionsServer",
        shell=lambda c: ("bash", {"command": c, "description": "apply the change"}),
        exported=opencode_config,
        server_kwargs={"is_side_call": no_tools},
    ),
    "claude": Target(
        server="tests.models.anthropic:MessagesServer",
        shell=lambda c: ("Bash", {"command": c, "description": "apply the change"}),
        exported=lambda url: {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url},
        server_kwargs={"is_side_call": no_tools},
    ),
    "codex": Target(
        server="tests.models.openai_responses:ResponsesServer",
        shell=lambda c: ("exec_command", {"cmd": c}),
        exported=lambda url: {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{url}/v1"},
    ),
    "copilot": Target(
        server="tests.models.openai_chat:ChatCompletionsServer",
        shell=lambda c: ("bash", {"command": c, "description": "apply the change"}),
        exported=lambda url: {
            "COPILOT_PROVIDER_API_KEY": KEY,
            "COPILOT_PROVIDER_BASE_URL": f"{url}/v1",
            "COPILOT_OFFLINE": "true",
            "COPILOT_MODEL": "test-model",
        },
        server_kwargs={"is_side_call": no_tools},
    ),
    "gemini": Target(
        server="tests.models.gemini:GeminiServer",
        shell=lambda c: ("run_shell_command", {"command": c, "description": "apply"}),
        exported=lambda url: {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": url},
    ),
}

LAUNCHER = """#!/bin/sh
case "$1" in
  --version|--help) ;;
  *) env > {record}/"$$.env" ;;
esac
{exports}
exec {binary} "$@"
"""


def server_class(cli: str, target: Target) -> type[ScriptedServer]:
    if cli not in known_agents():
        pytest.skip(f"no {cli} adapter in the tree yet")
    module, _, name = target.server.partition(":")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} (its scripted model server) is not in the tree yet")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, ScriptedServer)
    return cls


def launcher(binary: Path, own: dict[str, str], where: Path) -> tuple[Path, Path, Path]:
    """The executable override: records the environment, sets ``own``, runs ``binary`` watched."""
    record = where / "seen"
    record.mkdir(parents=True)
    netlog = where / "net.log"
    real = netwatch.wrap(binary, netlog, where / "watched") if netwatch.available() else binary
    exports = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in own.items())
    path = where / "launcher"
    quoted = {"record": shlex.quote(str(record)), "binary": shlex.quote(str(real))}
    path.write_text(LAUNCHER.format(exports=exports, **quoted))
    path.chmod(0o755)
    return path, record, netlog


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.replace("_", "").isalnum():
            out[name] = value
    return out


@pytest.mark.parametrize("cli", sorted(TARGETS))
def test_the_demo_merges_the_sprint_s_scenes_with_the_real_cli(cli: str, tmp_path: Path) -> None:
    target = TARGETS[cli]
    cls = server_class(cli, target)
    binary = require(cli)
    playbook = SprintPlaybook(Dialect(write=_write, shell=target.shell))
    work = tmp_path / "demo"
    report = tmp_path / "report.json"
    with cls(playbook, **target.server_kwargs) as server:
        bin_override, record, netlog = launcher(
            binary, target.own_config(server.url, tmp_path), tmp_path
        )
        home = tmp_path / "home"
        home.mkdir()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "LANG": "C.UTF-8",
            **target.exported(server.url),
            **UNRELATED,
            f"STONEFORGE_{cli.upper()}_BIN": str(bin_override),
        }
        argv = ["demo", "--agent", cli, "--workers", "3", "--work-dir", str(work)]
        argv += ["--only", ",".join(SCENE_KEYS)]
        argv += ["--report", str(report), "--timeout", str(DEMO_TIMEOUT_S)]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "stoneforge", *argv],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT_S + 60,
        )
        took = time.monotonic() - started
    logs = "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(work.glob("*.log")))
    said = (
        f"playbook applied {playbook.applied}, said {playbook.summaries}, strays {playbook.strays}"
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}\n{said}\n{logs}"
    print(f"{cli}: the sprint merged in {took:.1f} s")  # the wall time, for -s / the CI log

    # Every task merged green, never before its blockers (fakehub's own record).
    tasks = {t["issue"]: t for t in json.loads(report.read_text())["tasks"]}
    assert len(tasks) == len(SCENES)
    events = json.loads((work / "fakehub-events.json").read_text())
    merges = {e["pr"]: e for e in events if e["type"] == "merge"}
    assert sorted(merges) == sorted(t["pr"] for t in tasks.values())
    assert all(m["checks"].get("ci") == "success" for m in merges.values()), merges
    for task in tasks.values():
        for blocker in task["blocked_by"]:
            assert merges[task["pr"]]["at"] > merges[tasks[blocker]["pr"]]["at"]

    # The CLI did the work: each script's edits handed out and the run ended with its summary,
    # the reviewed task twice (its revision carries the reviewer's script), the task whose first
    # push failed CI twice (its fix), and the conflict resolved through the CLI's shell.
    reviewed = [item for item in SCENES if item.review]
    summaries = {str(item.script.get("summary")) for item in SCENES}
    summaries |= {str(parse_script(item.review or "").get("summary")) for item in reviewed}
    summaries |= {str(item.script["fix"]["summary"]) for item in SCENES if "fix" in item.script}
    assert summaries <= set(playbook.summaries), summaries - set(playbook.summaries)
    assert any(said.startswith("Resolved the conflicts in") for said in playbook.summaries)
    assert "def retry_after(" in main_file(work, "app/ratelimit.py")
    for item in SCENES:
        for edit in item.script["edits"]:
            assert main_file(work, edit["path"]), edit["path"]

    # The key the user exported reached the model server, through the CLI.
    assert all(KEY in " ".join(r.headers.values()) for r in server.requests), "a call without it"

    # The CLI saw its key, and no other secret of the caller. (Other exported variables may stop
    # at the adapter: codex's turns a base URL into command-line settings.)
    seen = [read_env(p) for p in record.iterdir()]
    assert len(seen) >= len(SCENES) + len(reviewed)
    keys = [name for name, value in target.exported(server.url).items() if value == KEY]
    for agent_env in seen:
        assert [agent_env.get(name) for name in keys] == [KEY] * len(keys)
        assert not set(UNRELATED) & set(agent_env), agent_env
        assert "STONEFORGE_RUNNER_TOKEN" not in agent_env

    # It reached nothing but the model server.
    if netwatch.available():
        strays = netwatch.strays(netlog, {server.port, *target.allowed_ports})
        assert strays == [], strays


def main_file(work: Path, path: str) -> str:
    git_dir = next((work / "fakehub").rglob("demo.git"))
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"main:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout if out.returncode == 0 else ""
