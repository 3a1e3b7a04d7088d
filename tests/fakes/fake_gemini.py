#!/usr/bin/env python3
"""A scripted stand-in for `gemini -p "" --output-format stream-json` (agent-clis.md §5).

Standard library only, no network. Like the real CLI it rejects unknown flags (exit 42), refuses
an untrusted folder without --skip-trust (exit 55), needs an auth method in the environment
(exit 41), and reads the prompt from stdin with the `-p` text appended. It plays a scenario:
`FAKE_GEMINI_SCENARIO=<path or name>` or a `[[fake:NAME]]` marker in the prompt, resolved to
tests/fakes/scenarios/gemini/NAME.json. Only the shapes the real CLI cannot be made to produce
have a scenario here (`garbage_lines`); the rest is tested against the real binary
(tests/conformance/test_gemini.py).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import fakecli
from fakecli import common_step

VERSION = "0.61.0"
MODEL = "gemini-2.5-pro"
SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "gemini"
VALUE_FLAGS = {
    "-p",
    "--prompt",
    "-o",
    "--output-format",
    "-m",
    "--model",
    "--approval-mode",
    "--session-id",
    "-r",
    "--resume",
    "--include-directories",
    "--policy",
    "-e",
    "--extensions",
    "--allowed-mcp-server-names",
}
BOOL_FLAGS = {"-y", "--yolo", "--skip-trust", "-s", "--sandbox", "--raw-output", "-d", "--debug"}
APPROVAL_MODES = {"default", "auto_edit", "yolo", "plan"}
AUTH_ENV = ("GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA")
UNTRUSTED = (
    "Gemini CLI is not running in a trusted directory. To proceed, either use `--skip-trust`, "
    "set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or trust this directory."
)
NO_AUTH = (
    "Please set an Auth method in your settings.json or specify one of the following environment "
    "variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA"
)


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def parse_argv(argv: list[str]) -> dict[str, str | bool]:
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    fail(f"Not enough arguments following: {name.lstrip('-')}", 42)
                inline = argv[i]
            opts[name] = inline
        elif arg in BOOL_FLAGS:
            opts[arg] = True
        elif arg in ("-v", "--version"):
            print(VERSION)
            sys.exit(0)
        else:
            fail(f"Unknown argument: {arg.lstrip('-')}", 42)
        i += 1
    return opts


class Emitter:
    def __init__(self, session_id: str, model: str) -> None:
        self.session_id = session_id
        self.model = model
        self.tools = 0
        self.stats = {"input_tokens": 0, "output_tokens": 0, "cached": 0}

    def out(self, kind: str, **fields: object) -> None:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        sys.stdout.write(json.dumps({"type": kind, "timestamp": stamp, **fields}) + "\n")
        sys.stdout.flush()

    def result(self, step: dict) -> int:
        stats = {**self.stats, "total_tokens": sum(self.stats.values()), "tool_calls": self.tools}
        stats |= {"duration_ms": 0 if step.get("status") == "error" else 4200}
        stats["models"] = {self.model: dict(self.stats)}
        msg: dict[str, object] = {"status": step.get("status", "success"), "stats": stats}
        if "error_type" in step:
            msg["error"] = {"type": step["error_type"], "message": step.get("message", "")}
        self.out("result", **msg)
        return int(step.get("exit_code", 0 if msg["status"] == "success" else 1))


def play(steps: list[dict], em: Emitter) -> int:
    exit_code = 0
    for step in steps:
        kind = step.get("emit")
        if kind == "init":
            em.out("init", session_id=em.session_id, model=em.model)
        elif kind == "user":
            em.out("message", role="user", content=step.get("content", "(prompt)"))
        elif kind == "text":
            em.stats["output_tokens"] += 20
            em.out("message", role="assistant", content=step["text"], delta=True)
        elif kind == "tool_use":
            em.tools += 1
            em.stats["input_tokens"] += 1500
            em.stats["cached"] += 700
            params = step.get("parameters", {})
            em.out("tool_use", tool_name=step["name"], tool_id=f"t{em.tools}", parameters=params)
        elif kind == "tool_result":
            status = step.get("status", "success")
            em.out("tool_result", tool_id=f"t{em.tools}", status=status, output=step.get("output"))
        elif kind == "error":
            severity = step.get("severity", "error")
            em.out("error", severity=severity, message=step["message"])
        elif kind == "result":
            exit_code = em.result(step)
        elif kind == "unknown":
            em.out(step.get("type", "brand_new_event"), payload={"x": 1})
        elif (code := common_step(step)) is not None:
            return code
    return exit_code


def load_scenario(prompt: str, session: dict) -> list[dict]:
    return fakecli.load_scenario("gemini", prompt, SCENARIOS, session=session)


def main() -> int:
    opts = parse_argv(sys.argv[1:])
    if opts.get("--approval-mode", "default") not in APPROVAL_MODES:
        fail(f"Invalid values:\n  Argument: approval-mode, Given: {opts['--approval-mode']!r}", 42)
    output_format = opts.get("-o") or opts.get("--output-format") or "text"
    if output_format != "stream-json":
        fail("fake gemini supports --output-format stream-json only", 42)
    trusted = os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") == "true"
    if not (opts.get("--skip-trust") or trusted):
        fail(UNTRUSTED, 55)
    if not any(os.environ.get(name) for name in AUTH_ENV):
        fail(NO_AUTH, 41)
    prompt = "" if sys.stdin.isatty() else sys.stdin.read()
    flag_prompt = str(opts.get("-p") or opts.get("--prompt") or "")
    prompt = f"{prompt}\n\n{flag_prompt}" if flag_prompt else prompt
    if not prompt.strip():
        fail("No input provided via stdin. Input can be provided by piping data into gemini", 42)
    if log := os.environ.get("FAKE_GEMINI_ARGV_LOG"):
        Path(log).write_text(json.dumps({"argv": sys.argv[1:], "prompt": prompt}))
    resume = opts.get("--resume") or opts.get("-r")
    session_id = str(resume or opts.get("--session-id") or uuid.uuid4())
    # Sessions live under HOME, per project (§5.4); a resume of one not found exits 42.
    chats = Path.home() / ".gemini" / "tmp" / fakecli.project_key(os.getcwd()) / "chats"
    state_file = chats / f"session-{session_id}.json"
    state = fakecli.load_session(state_file) if resume else {}
    if state is None:
        fail(f'Error resuming session: Invalid session identifier "{session_id}".\n'
             f"  Searched for sessions in {chats}.", 42)  # fmt: skip
    model = str(opts.get("-m") or opts.get("--model") or MODEL)
    code = play(load_scenario(prompt, state), Emitter(session_id, model))
    fakecli.save_session(state_file, state)
    return code


if __name__ == "__main__":
    sys.exit(main())
