#!/usr/bin/env python3
"""A scripted stand-in for `opencode run --format json` (agent-clis.md §4).

Standard library only, no network. Like the real CLI it rejects unknown flags, honours `--dir`,
merges a non-TTY stdin with the message (and fails with "You must provide a message or a command"
when both are empty), validates OPENCODE_PERMISSION as JSON, and exits 1 when any session error
was seen. It plays a scenario: `FAKE_OPENCODE_SCENARIO=<path or name>` or a `[[fake:NAME]]` marker
in the prompt, resolved to tests/fakes/scenarios/opencode/NAME.json (default `success`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import fakecli
from fakecli import common_step

VERSION = "1.18.33"
SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "opencode"
VALUE_FLAGS = {
    "--format",
    "-m",
    "--model",
    "-s",
    "--session",
    "--title",
    "--dir",
    "--agent",
    "--variant",
    "--attach",
    "-f",
    "--file",
}
BOOL_FLAGS = {
    "-c",
    "--continue",
    "--fork",
    "--auto",
    "--yolo",
    "--dangerously-skip-permissions",
    "--pure",
    "--thinking",
    "--print-logs",
}
FORMATS = {"default", "json"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def parse_argv(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    if argv[:1] in (["--version"], ["-v"]):
        print(VERSION)
        sys.exit(0)
    if argv[:1] != ["run"]:
        fail("fake opencode supports `opencode run` only")
    opts: dict[str, str | bool] = {}
    positional: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    fail(f"Not enough arguments following: {name.lstrip('-')}")
                inline = argv[i]
            opts[name] = inline
        elif arg in BOOL_FLAGS:
            opts[arg] = True
        elif arg.startswith("-"):
            fail(f"Unknown argument: {arg.lstrip('-')}")
        else:
            positional.append(arg)
        i += 1
    return opts, positional


class Emitter:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.errors = 0
        self.calls = 0

    def out(self, kind: str, **fields: object) -> None:
        msg = {"type": kind, "timestamp": int(time.time() * 1000), "sessionID": self.session_id}
        sys.stdout.write(json.dumps({**msg, **fields}) + "\n")
        sys.stdout.flush()


def play(steps: list[dict], em: Emitter) -> int | None:
    for step in steps:
        kind = step.get("emit")
        if kind == "step_start":
            em.out("step_start", part={"type": "step-start"})
        elif kind == "text":
            em.out("text", part={"type": "text", "text": step["text"], "time": {"end": 1}})
        elif kind == "tool_use":
            em.calls += 1
            state = {"status": step.get("status", "completed"), "input": step.get("input", {})}
            state |= {"output": step.get("output", ""), "title": step["tool"]}
            part = {"type": "tool", "tool": step["tool"], "callID": f"call_{em.calls}"}
            em.out("tool_use", part={**part, "state": state})
        elif kind == "step_finish":
            tokens = {"input": step.get("input", 1000), "output": step.get("output", 50)}
            tokens |= {"reasoning": 0, "cache": {"read": step.get("cache_read", 0), "write": 0}}
            part = {"type": "step-finish", "reason": step.get("reason", "stop")}
            em.out("step_finish", part={**part, "cost": step.get("cost", 0.001), "tokens": tokens})
        elif kind == "error":
            em.errors += 1
            data = {"message": step["message"], **step.get("data", {})}
            em.out("error", error={"name": step["name"], "data": data})
        elif kind == "unknown":
            em.out(step.get("type", "brand_new_event"), part={"x": 1})
        elif (code := common_step(step)) is not None:
            return code
    return None


def load_scenario(prompt: str, session: dict) -> list[dict]:
    return fakecli.load_scenario("opencode", prompt, SCENARIOS, session=session)


def main() -> int:
    opts, positional = parse_argv(sys.argv[1:])
    if opts.get("--format", "default") not in FORMATS:
        fail(f"Invalid values:\n  Argument: format, Given: {opts['--format']!r}")
    if opts.get("--format") != "json":
        fail("fake opencode supports --format json only")
    if permission := os.environ.get("OPENCODE_PERMISSION"):
        try:
            json.loads(permission)
        except ValueError:
            fail("OPENCODE_PERMISSION is not valid JSON")
    if "--dir" in opts:
        os.chdir(str(opts["--dir"]))
    prompt = " ".join(positional)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()  # read to EOF and merged with the message, like run.ts
        prompt = f"{prompt}\n{piped}" if prompt else piped
    if not prompt.strip():
        fail("You must provide a message or a command")
    if log := os.environ.get("FAKE_OPENCODE_ARGV_LOG"):
        Path(log).write_text(json.dumps({"argv": sys.argv[1:], "prompt": prompt}))
    resume = opts.get("-s") or opts.get("--session")
    session_id = str(resume or f"ses_{os.urandom(6).hex()}")
    state_file = Path.home() / ".local" / "share" / "opencode" / "fake-sessions" / session_id
    state = fakecli.load_session(state_file) if resume else {}
    if state is None:
        # What 1.14 does for `-s` of a session it does not have: stderr only, exit 0
        # (anomalyco/opencode#27559).
        print(f'NotFoundError: NotFoundError\n data: {{\n  message: "Session not found: '
              f'{session_id}",\n}},', file=sys.stderr, flush=True)  # fmt: skip
        return 0
    em = Emitter(session_id)
    code = play(load_scenario(prompt, state), em)
    fakecli.save_session(state_file, state)
    return code if code is not None else (1 if em.errors else 0)


if __name__ == "__main__":
    sys.exit(main())
