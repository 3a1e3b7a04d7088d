"""A playbook that works the demo's sprint: every task answered from its own prompt.

The demo's issues each carry a ``stoneforge-script`` block (JSON edits: ``write``, ``replace``,
``append``; ``runner.agents.script_agent``), and a revision's prompt carries the reviewer's block
under "Review feedback to address", which wins, as it does for the script agent (``parse_script``
picks it). :class:`SprintPlaybook` answers the first model call of a task with the CLI's shell
tool running a small ``python3`` program that applies that block's edits in the working
directory, and the next call (the tool's result is back) with the script's summary, which ends the
run. Every CLI with a shell tool works the sprint through it; a CLI's :class:`Dialect` only names
its shell tool.

"First call" is per script, not per conversation: a revision may resume the task's session, whose
history already holds the first run's tool result. So the playbook remembers how many tool
results the conversation had when it handed out a script's edits: a later call with more results
is the one after the edits ran; a call with no more (a fresh try of the same task, say) gets the
edits again.

A resolve_conflicts prompt (the steward's, after a rebase met conflicts) is answered the same
way with a program that resolves each file it names as the script agent does: both sides, the
base's lines first (``script_agent.resolve_both``); a fix_checks prompt gets the script's ``fix``
(``parse_script`` picks it).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from runner.agents import script_agent
from runner.agents.script_agent import (
    CONFLICTED,
    RESOLVE_TITLE,
    ScriptError,
    _resolve_script,
    parse_script,
)
from tests.models.scenario import Dialect, Say, Shell, Turn, reply

# Runs with the agent's own python3, in its working directory; edits as script_agent applies them.
APPLY = """\
import json, pathlib, sys
for edit in json.loads(EDITS):
    path = pathlib.Path(edit["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if "write" in edit:
        path.write_text(edit["write"])
    elif "append" in edit:
        with path.open("a") as fh:
            fh.write(edit["append"])
    else:
        old, new = edit["replace"]
        text = path.read_text()
        if old not in text:
            sys.exit("replace: text not found in %s: %r" % (path, old))
        path.write_text(text.replace(old, new, 1))
    print("applied", next(k for k in ("write", "append", "replace") if k in edit), path)
"""


RESOLVE = (
    inspect.getsource(script_agent.ScriptError)
    + inspect.getsource(script_agent.resolve_both)
    + """
import pathlib
for name in NAMES:
    path = pathlib.Path(name)
    path.write_text(resolve_both(path.read_text()))
    print("resolved", path)
"""
)


def resolve_command(names: list[str]) -> str:
    """A shell command that resolves the conflicts in ``names`` as the script agent does."""
    program = f"NAMES = {json.dumps(names)}\n{RESOLVE}"
    encoded = base64.b64encode(program.encode()).decode()
    return f"python3 -c \"import base64; exec(base64.b64decode('{encoded}'))\""


def apply_command(edits: list[dict[str, Any]]) -> str:
    """A shell command that applies ``edits`` with python3 (no quoting trouble: base64)."""
    program = f"EDITS = {json.dumps(json.dumps(edits))}\n{APPLY}"
    encoded = base64.b64encode(program.encode()).decode()
    return f"python3 -c \"import base64; exec(base64.b64decode('{encoded}'))\""


@dataclass
class SprintPlaybook:
    """``Playbook`` for the demo's sprint; ``dialect`` names the CLI's shell tool."""

    dialect: Dialect
    applied: list[str] = field(default_factory=list)  # each script's summary, as handed out
    summaries: list[str] = field(default_factory=list)  # each summary said (a run's end)
    strays: list[str] = field(default_factory=list)  # prompts with no script (answered "done")
    _issued: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next_turn(self, prompt: str = "", round: int = 0) -> Turn:
        if RESOLVE_TITLE in prompt and _resolve_script(prompt) is None:
            return self._resolve(prompt, round)
        try:
            script = parse_script(prompt)
        except ScriptError:
            with self._lock:
                self.strays.append(prompt[:500])
            return reply(Say("I found no stoneforge-script block to work from."))
        summary = str(script.get("summary") or "Done.")
        key = hashlib.sha256(json.dumps(script, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._issued and round > self._issued[key]:
                self.summaries.append(summary)
                return reply(Say(summary))
            self._issued[key] = round
            self.applied.append(summary)
        edits = list(script.get("edits") or [])
        return reply(Say("Applying the change."), Shell(apply_command(edits)))

    def _resolve(self, prompt: str, round: int) -> Turn:
        names = CONFLICTED.findall(prompt)
        summary = "Resolved the conflicts in " + ", ".join(names) + ", keeping both changes."
        key = "resolve:" + hashlib.sha256(prompt.encode()).hexdigest()
        with self._lock:
            if key in self._issued and round > self._issued[key]:
                self.summaries.append(summary)
                return reply(Say(summary))
            self._issued[key] = round
            self.applied.append(summary)
        return reply(Say("Resolving the conflicts."), Shell(resolve_command(names)))
