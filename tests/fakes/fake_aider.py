#!/usr/bin/env python3
"""A scripted stand-in for `aider --message-file F --yes-always --no-pretty ...` (agent-clis.md §6).

Standard library only, no network. Like the real CLI it rejects unknown flags (argparse style,
exit 2), reads the message from --message/--message-file, prints plain text (a banner, the model's
reply, `Applied edit to ...`, `Tokens: ... Cost: ...`), appends JSONL to --analytics-log, writes
its chat history to --chat-history-file (default `.aider.chat.history.md` in the cwd), and exits 0
even when the LLM call failed. It plays a scenario: `FAKE_AIDER_SCENARIO=<path or name>` or a
`[[fake:NAME]]` marker in the message, resolved to tests/fakes/scenarios/aider/NAME.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import fakecli
from fakecli import common_step

VERSION = "aider 0.86.2"
MODEL = "gpt-4.1"
SCENARIOS = Path(__file__).resolve().parent / "scenarios" / "aider"
VALUE_FLAGS = {
    "--message",
    "--msg",
    "-m",
    "--message-file",
    "-f",
    "--model",
    "--analytics-log",
    "--chat-history-file",
    "--input-history-file",
    "--llm-history-file",
    "--read",
    "--file",
    "--edit-format",
    "--map-tokens",
    "--env-file",
    "--model-settings-file",
    "--model-metadata-file",
}
BOOL_FLAGS = {
    "--yes-always",
    "--no-pretty",
    "--no-stream",
    "--no-fancy-input",
    "--no-auto-commits",
    "--no-gitignore",
    "--add-gitignore-files",
    "--no-check-update",
    "--no-show-release-notes",
    "--analytics-disable",
    "--no-analytics",
    "--subtree-only",
    "--no-show-model-warnings",
    "--dry-run",
}
PROG = "aider"


def fail(message: str, code: int = 2) -> None:
    print(f"usage: {PROG} [-h] [--model MODEL] ...\n{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def parse_argv(argv: list[str]) -> tuple[dict[str, list[str] | bool], list[str]]:
    opts: dict[str, list[str] | bool] = {}
    positional: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    fail(f"argument {name}: expected one argument")
                inline = argv[i]
            values = opts.setdefault(name, [])
            assert isinstance(values, list)
            values.append(inline)
        elif arg in BOOL_FLAGS:
            opts[arg] = True
        elif arg == "--version":
            print(VERSION)
            sys.exit(0)
        elif arg.startswith("-"):
            unknown.append(arg)
        else:
            positional.append(arg)
        i += 1
    if unknown:
        fail(f"unrecognized arguments: {' '.join(unknown)}")
    return opts, positional


def last(opts: dict[str, list[str] | bool], *names: str) -> str | None:
    for name in names:
        value = opts.get(name)
        if isinstance(value, list) and value:
            return value[-1]
    return None


class Session:
    def __init__(self, opts: dict[str, list[str] | bool]) -> None:
        self.model = last(opts, "--model") or MODEL
        self.analytics = last(opts, "--analytics-log")
        self.history = Path(last(opts, "--chat-history-file") or ".aider.chat.history.md")
        self.total_cost = 0.0

    def say(self, text: str) -> None:
        print(text, flush=True)
        with self.history.open("a") as f:
            f.write(text + "\n")

    def event(self, name: str, **props: object) -> None:
        if not self.analytics:
            return
        entry = {"event": name, "properties": props, "user_id": "fake", "time": int(time.time())}
        with open(self.analytics, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def tokens(self, step: dict) -> None:
        sent, received, cost = step.get("sent", 12400), step.get("received", 350), step["cost"]
        self.total_cost += cost
        print(
            f"Tokens: {sent / 1000:.1f}k sent, {received} received. "
            f"Cost: ${cost:.2f} message, ${self.total_cost:.2f} session.",
            flush=True,
        )
        self.event(
            "message_send",
            main_model=self.model,
            prompt_tokens=sent,
            completion_tokens=received,
            total_tokens=sent + received,
            cost=cost,
            total_cost=self.total_cost,
        )


def play(steps: list[dict], s: Session) -> int:
    for step in steps:
        kind = step.get("emit")
        if kind == "banner":
            s.say(f"Aider v{VERSION.split()[1]}\nMain model: {s.model} with diff edit format")
            s.say("Git repo: .git with 3 files\nRepo-map: using 4096 tokens, auto refresh")
        elif kind == "say":
            s.say(step["text"])
        elif kind == "edit":
            target = Path(step["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step["content"])
            s.say(f"Applied edit to {step['path']}")
        elif kind == "tokens":
            s.tokens(step)
        elif kind == "exception":
            s.say(step["message"])
            s.event("message_send_exception", exception=step["message"])
        elif kind == "exit_event":
            s.event("exit", reason=step.get("reason", "Completed --message"))
        elif (code := common_step(step)) is not None:
            return code
    return 0  # aider returns 0 after --message even when the LLM call failed


def load_scenario(prompt: str) -> list[dict]:
    return fakecli.load_scenario("aider", prompt, SCENARIOS)


def main() -> int:
    opts, _files = parse_argv(sys.argv[1:])
    message = last(opts, "--message", "--msg", "-m")
    if message_file := last(opts, "--message-file", "-f"):
        try:
            message = Path(message_file).read_text()
        except OSError as exc:
            print(f"Error reading message file: {exc}", file=sys.stderr)
            return 1
    if message is None:
        fail("fake aider needs --message or --message-file (no interactive mode)")
    for read in opts.get("--read", []) or []:  # type: ignore[union-attr]
        if not Path(read).is_file():
            print(f"Warning: {read} does not exist, skipping", flush=True)
    if log := os.environ.get("FAKE_AIDER_ARGV_LOG"):
        Path(log).write_text(json.dumps({"argv": sys.argv[1:], "prompt": message}))
    session = Session(opts)
    session.event("launched")
    return play(load_scenario(str(message)), session)


if __name__ == "__main__":
    sys.exit(main())
