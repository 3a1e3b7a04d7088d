#!/usr/bin/env python3
"""A scripted stand-in for `codex exec --json` (agent-clis.md §3).

Standard library only, no network. Like the real CLI it rejects unknown flags (exit 2, clap
style; `--full-auto` is gone since 0.147), needs a git repository unless --skip-git-repo-check,
honours `-C`, and reads the prompt from stdin when it is absent or `-`. It then plays a scenario:
`FAKE_CODEX_SCENARIO=<path or name>` or a `[[fake:NAME]]` marker in the prompt, resolved to
tests/fakes/scenarios/codex/NAME.json (default `success`). Step kinds are listed in `play()`.
Threads are saved in `$CODEX_HOME/fake-sessions` (else `~/.codex`): `exec resume <id>` continues
one, its `turn.completed` usage the thread's running total as in the real CLI (0.155 on), and
plays the scenario's "resumed" steps when it has them; an unknown id fails as the real CLI does.
`FAKE_CODEX_ARGV_LOG` names a file that gets one JSON line per invocation.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import fakecli
from fakecli import common_step

VERSION = "codex-cli 0.171.0"
SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "codex"
VALUE_FLAGS = {
    "-s",
    "--sandbox",
    "-m",
    "--model",
    "-c",
    "--config",
    "-C",
    "--cd",
    "--add-dir",
    "-o",
    "--output-last-message",
    "--output-schema",
    "-p",
    "--profile",
}
BOOL_FLAGS = {
    "--json",
    "--experimental-json",
    "--skip-git-repo-check",
    "--ephemeral",
    "--ignore-user-config",
    "--ignore-rules",
    "--dangerously-bypass-approvals-and-sandbox",
}
SANDBOXES = {"read-only", "workspace-write", "danger-full-access"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def parse_argv(argv: list[str]) -> tuple[dict[str, list[str] | bool], list[str]]:
    if argv[:1] == ["--version"]:
        print(VERSION)
        sys.exit(0)
    if argv[:1] not in (["exec"], ["e"]):
        fail("fake codex supports `codex exec` only")
    opts: dict[str, list[str] | bool] = {}
    positional: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in VALUE_FLAGS and not positional:
            if not eq:
                i += 1
                if i >= len(argv):
                    fail(
                        f"error: a value is required for '{name} <VALUE>' but none was supplied", 2
                    )
                inline = argv[i]
            values = opts.setdefault(name, [])
            assert isinstance(values, list)
            values.append(inline)
        elif arg in BOOL_FLAGS and not positional:
            opts[arg] = True
        elif arg.startswith("-") and arg != "-":
            fail(f"error: unexpected argument '{arg}' found\n\nUsage: codex exec [OPTIONS]", 2)
        else:
            positional.append(arg)
        i += 1
    return opts, positional


def last(opts: dict[str, list[str] | bool], *names: str) -> str | None:
    for name in names:
        value = opts.get(name)
        if isinstance(value, list) and value:
            return value[-1]
    return None


def in_git_repo(path: Path) -> bool:
    return any((p / ".git").exists() for p in (path, *path.parents))


class Emitter:
    def __init__(self, thread_id: str, state: dict) -> None:
        self.thread_id = thread_id
        self.items = 0
        self.usage = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
        self.usage.update(state.get("usage", {}))  # a resumed thread continues its totals
        self.forget = False  # a `forget_session` step: save nothing, so a resume finds nothing

    def out(self, msg: dict) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def item(self, item: dict, started: bool = False) -> None:
        self.items += 1
        item = {"id": f"item_{self.items}", **item}
        if started:
            self.out({"type": "item.started", "item": {**item, "status": "in_progress"}})
        self.out({"type": "item.completed", "item": item})
        for key in self.usage:
            self.usage[key] += {"input_tokens": 1200, "cached_input_tokens": 800}.get(key, 40)


def play(steps: list[dict], em: Emitter) -> int:
    exit_code = 0
    for step in steps:
        kind = step.get("emit")
        if kind == "thread.started":
            em.out({"type": "thread.started", "thread_id": em.thread_id})
        elif kind == "turn.started":
            em.out({"type": "turn.started"})
        elif kind == "agent_message":
            em.item({"type": "agent_message", "text": step["text"]})
        elif kind == "reasoning":
            em.item({"type": "reasoning", "text": step.get("text", "thinking")})
        elif kind == "command":
            item = {"type": "command_execution", "command": step["command"]}
            item |= {"aggregated_output": step.get("output", ""), "exit_code": 0}
            em.item({**item, "status": "completed"}, started=True)
        elif kind == "file_change":
            changes = [{"path": step["path"], "kind": step.get("kind", "add")}]
            em.item({"type": "file_change", "changes": changes, "status": "completed"})
        elif kind == "item_error":
            em.item({"type": "error", "message": step["message"]})
        elif kind == "error":
            em.out({"type": "error", "message": step["message"]})
        elif kind == "turn.completed":
            em.out({"type": "turn.completed", "usage": step.get("usage", em.usage)})
        elif kind == "turn.failed":
            em.out({"type": "turn.failed", "error": {"message": step["message"]}})
            exit_code = 1
        elif kind == "unknown":
            em.out({"type": step.get("type", "brand.new.event"), "payload": {"x": 1}})
        elif step.get("forget_session"):
            em.forget = True
        elif (code := common_step(step)) is not None:
            return code
    return exit_code


def load_scenario(prompt: str, session: dict) -> list[dict]:
    return fakecli.load_scenario("codex", prompt, SCENARIOS, session=session)


def main() -> int:
    opts, positional = parse_argv(sys.argv[1:])
    if not (opts.get("--json") or opts.get("--experimental-json")):
        fail("fake codex supports --json output only")
    sandbox = last(opts, "-s", "--sandbox")
    if sandbox is not None and sandbox not in SANDBOXES:
        fail(f"error: invalid value '{sandbox}' for '--sandbox <SANDBOX_MODE>'", 2)
    for override in opts.get("-c", []) or []:  # type: ignore[union-attr]
        if "=" not in override:
            fail(f"Error: invalid override {override!r}: expected key=value", 2)
    if cd := last(opts, "-C", "--cd"):
        os.chdir(cd)
    thread_id = str(uuid.uuid4())
    resume = positional[:1] == ["resume"]
    if resume:
        if len(positional) < 2:
            fail("error: resume needs a SESSION_ID or --last", 2)
        thread_id, positional = positional[1], positional[2:]
    if len(positional) > 1:
        fail(f"error: unexpected argument '{positional[1]}' found", 2)
    prompt = positional[0] if positional else "-"
    if prompt == "-":
        prompt = sys.stdin.read()
    elif not sys.stdin.isatty():
        prompt += f"\n\n<stdin>\n{sys.stdin.read()}\n</stdin>"
    if not prompt.strip():
        fail("No prompt provided via stdin.")
    skip_check = opts.get("--skip-git-repo-check") or opts.get(
        "--dangerously-bypass-approvals-and-sandbox"
    )
    if not skip_check and not in_git_repo(Path.cwd()):
        fail("Not inside a trusted directory and --skip-git-repo-check was not specified.")
    fakecli.record_call("FAKE_CODEX_ARGV_LOG", sys.argv[1:], prompt)
    codex_home = Path(os.environ.get("CODEX_HOME", Path.home() / ".codex"))
    state_file = codex_home / "fake-sessions" / f"{thread_id}.json"
    state = fakecli.load_session(state_file) if resume else {}
    if state is None:
        fail(
            "Error: thread/resume: thread/resume failed: no rollout found for thread id "
            f"{thread_id} (code -32600)"
        )
    assert state is not None
    em = Emitter(thread_id, state)
    code = play(load_scenario(prompt, state), em)
    if not em.forget:
        state["usage"] = em.usage
        fakecli.save_session(state_file, state)
    return code


if __name__ == "__main__":
    sys.exit(main())
