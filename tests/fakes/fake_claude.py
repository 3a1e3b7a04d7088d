#!/usr/bin/env python3
"""A scripted stand-in for `claude -p --output-format stream-json --verbose` (agent-clis.md §9).

Standard library only, no network. It checks its argv like the real CLI (unknown flags are an
error; stream-json needs --verbose), reads the prompt from the positional argument or from stdin
until EOF, and plays a scenario: `FAKE_CLAUDE_SCENARIO=<path>` or a `[[fake:NAME]]` marker in the
prompt (tests/fakes/scenarios/NAME.json). A scenario is {"steps": [...]} or a bare list of steps;
the step kinds are listed in `play()`. Sessions are saved in `$CLAUDE_CONFIG_DIR/fake-sessions`
(else `~/.claude`): `--resume <id>` continues one, its cost and usage running totals as in the
real CLI, and plays the scenario's "resumed" steps when it has them; an unknown id fails as the
real CLI does. `FAKE_CLAUDE_ARGV_LOG` names a file that gets one JSON line per invocation.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import fakecli
from fakecli import common_step

VERSION = "2.1.332 (Claude Code)"
MODEL = "claude-sonnet-4-5"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
VALUE_FLAGS = {
    "--output-format",
    "--input-format",
    "--permission-mode",
    "--max-turns",
    "--max-budget-usd",
    "--model",
    "--session-id",
    "--resume",
    "-r",
    "--append-system-prompt",
    "--append-system-prompt-file",
    "--allowedTools",
    "--disallowedTools",
    "--settings",
    "--add-dir",
}
BOOL_FLAGS = {"-p", "--print", "--verbose", "--bare", "--include-partial-messages"}
NO_INPUT = "either through stdin or as a prompt argument"
ERROR_SUBTYPES = {"error_during_execution", "error_max_turns", "error_max_budget_usd"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def parse_argv(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    opts: dict[str, str | bool] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in VALUE_FLAGS:
            if eq:
                opts[name] = inline
            elif i + 1 < len(argv):
                i += 1
                opts[name] = argv[i]
            else:
                fail(f"error: option '{name} <value>' argument missing")
        elif arg in BOOL_FLAGS:
            opts[arg] = True
        elif arg == "--version":
            print(VERSION)
            sys.exit(0)
        elif arg.startswith("-"):
            fail(f"error: unknown option '{arg}'")
        else:
            positional.append(arg)
        i += 1
    return opts, positional


class Emitter:
    def __init__(self, session_id: str, cwd: str, opts: dict[str, str | bool], state: dict) -> None:
        self.session_id = session_id
        self.cwd = cwd
        self.opts = opts
        self.state = state  # cumulative cost/usage for --resume
        self.next_usage: dict | None = None
        self.usage = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        self.usage.update(state.get("usage", {}))  # a resumed session continues its totals
        self.forget = False  # a `forget_session` step: save nothing, so a --resume finds nothing
        self.turns = 0
        self.msg_n = 0
        self.tool_n = 0
        self.last_text = ""

    def out(self, msg: dict) -> None:
        msg.setdefault("session_id", self.session_id)
        msg.setdefault("uuid", str(uuid.uuid4()))
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def assistant(self, content: list, error: str | None = None) -> None:
        self.msg_n += 1
        self.turns += 1
        usage = self.next_usage or {"input_tokens": 10, "output_tokens": 20}
        self.next_usage = None
        for key in self.usage:
            self.usage[key] += int(usage.get(key, 0))
        msg = {
            "type": "assistant",
            "message": {
                "id": f"msg_{self.msg_n}",
                "role": "assistant",
                "model": "<synthetic>" if error else self.opts.get("--model", MODEL),
                "content": content,
                "stop_reason": None,
                "usage": usage,
            },
            "parent_tool_use_id": None,
        }
        if error:
            msg["error"] = error
        self.out(msg)

    def result(self, step: dict) -> int:
        subtype = step.get("subtype", "success")
        cost = step.get("total_cost_usd", self.state.get("cost", 0.0) + self.turns * 0.001)
        self.state["cost"] = cost
        # --max-budget-usd caps the session's running cost, which a resume continues.
        budget = self.opts.get("--max-budget-usd")
        if subtype == "success" and budget is not None and cost > float(budget) + 1e-12:
            subtype = "error_max_budget_usd"
        is_error = step.get("is_error", subtype != "success")
        usage = step.get("usage", dict(self.usage))
        msg = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "num_turns": step.get("num_turns", max(self.turns, 1)),
            "duration_ms": 1234,
            "duration_api_ms": 1000,
            "stop_reason": "end_turn",
            "terminal_reason": step.get("terminal_reason", "completed"),
            "total_cost_usd": cost,
            "usage": usage,
            "modelUsage": {
                MODEL: {
                    "inputTokens": usage.get("input_tokens", 0),
                    "outputTokens": usage.get("output_tokens", 0),
                    "costUSD": cost,
                    "contextWindow": 200000,
                }
            },
            "permission_denials": [],
        }
        if subtype == "success":
            msg["result"] = step.get("result", self.last_text)
        else:
            msg["errors"] = step.get("errors", [])
        for key in ("api_error_status", "startup_failure_reason"):
            if key in step:
                msg[key] = step[key]
        self.out(msg)
        return 1 if subtype in ERROR_SUBTYPES else 0


def play(steps: list[dict], em: Emitter) -> int:
    exit_code = 0
    for step in steps:
        kind = step.get("emit")
        if kind == "init":
            em.out(
                {
                    "type": "system",
                    "subtype": "init",
                    "cwd": em.cwd,
                    "model": em.opts.get("--model", MODEL),
                    "tools": ["Bash", "Edit", "Read", "Write"],
                    "mcp_servers": [],
                    "permissionMode": em.opts.get("--permission-mode", "default"),
                    "apiKeySource": "ANTHROPIC_API_KEY"
                    if "ANTHROPIC_API_KEY" in os.environ
                    else "none",
                    "claude_code_version": VERSION.split()[0],
                }
            )
        elif kind == "text":
            em.last_text = step["text"]
            em.assistant([{"type": "text", "text": step["text"]}])
        elif kind == "tool_use":
            em.tool_n += 1
            block = {"type": "tool_use", "id": f"toolu_{em.tool_n}", "name": step["name"]}
            em.assistant([{**block, "input": step.get("input", {})}])
        elif kind == "tool_result":
            block = {"type": "tool_result", "tool_use_id": f"toolu_{em.tool_n}"}
            block |= {"content": step.get("content", ""), "is_error": step.get("is_error", False)}
            em.out({"type": "user", "message": {"role": "user", "content": [block]}})
        elif kind == "assistant_error":
            text = step.get("text", "API Error")
            em.assistant([{"type": "text", "text": text}], error=step["error"])
        elif kind == "api_retry":
            em.out(
                {
                    "type": "system",
                    "subtype": "api_retry",
                    "attempt": step.get("attempt", 1),
                    "max_retries": 10,
                    "retry_delay_ms": step.get("delay_ms", 1000),
                    "error_status": step.get("status"),
                    "error": step.get("error", "unknown"),
                }
            )
        elif kind == "rate_limit_event":
            info = {"status": step.get("status", "rejected"), "rateLimitType": "five_hour"}
            info["resetsAt"] = int(time.time() + step.get("resets_in_s", 3600))
            em.out({"type": "rate_limit_event", "rate_limit_info": info})
        elif kind == "compact_boundary":
            meta = {"trigger": "auto", "pre_tokens": step.get("pre_tokens", 170000)}
            em.out({"type": "system", "subtype": "compact_boundary", "compact_metadata": meta})
        elif kind == "unknown":
            em.out({"type": step.get("type", "brand_new_event"), "payload": {"x": 1}})
        elif kind == "result":
            exit_code = em.result(step)
        elif "usage" in step:
            em.next_usage = step["usage"]
        elif step.get("ignore_sigterm"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif step.get("forget_session"):
            em.forget = True
        elif "repeat" in step:
            for _ in range(step["repeat"]["times"]):
                exit_code = play(step["repeat"]["steps"], em)
        elif (code := common_step(step)) is not None:
            return code
    return exit_code


def load_scenario(prompt: str, session: dict) -> list[dict]:
    return fakecli.load_scenario("claude", prompt, SCENARIOS, default="happy_path", session=session)


def no_conversation(session_id: str) -> int:
    """What the real CLI does for `--resume` of a session it does not have (exit 1)."""
    message = f"No conversation found with session ID: {session_id}"
    result = {"type": "result", "subtype": "error_during_execution", "is_error": True}
    result |= {"num_turns": 0, "total_cost_usd": 0, "errors": [message]}
    result |= {"session_id": session_id, "uuid": str(uuid.uuid4())}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    return 1


def main() -> int:
    opts, positional = parse_argv(sys.argv[1:])
    if not (opts.get("-p") or opts.get("--print")):
        fail("fake claude supports print mode (-p) only")
    if opts.get("--output-format") == "stream-json" and not opts.get("--verbose"):
        fail("Error: When using --print, --output-format=stream-json requires --verbose")
    prompt = " ".join(positional)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()  # blocks until EOF, like the real CLI waiting for its input
        prompt = f"{prompt}\n{piped}" if prompt else piped
    if not prompt.strip():
        fail(f"Error: Input must be provided {NO_INPUT} when using --print")
    config = Path(os.environ.get("CLAUDE_CONFIG_DIR", Path.home() / ".claude"))
    session_id = str(opts.get("--resume") or opts.get("--session-id") or uuid.uuid4())
    state_file = config / "fake-sessions" / f"{session_id}.json"
    fakecli.record_call("FAKE_CLAUDE_ARGV_LOG", sys.argv[1:], prompt)
    state = fakecli.load_session(state_file) if opts.get("--resume") else {}
    if state is None:
        return no_conversation(session_id)
    em = Emitter(session_id, os.getcwd(), opts, state)
    code = play(load_scenario(prompt, state), em)
    if not em.forget:
        state["usage"] = em.usage
        fakecli.save_session(state_file, state)
    return code


if __name__ == "__main__":
    sys.exit(main())
