"""The deterministic demo agent, run as `python -m runner.agents.script_agent [--sleep-scale F]`.

It reads the prompt on stdin, finds the one fenced block whose info string is `stoneforge-script`
(JSON: `{"sleep": s, "edits": [...], "summary": "..."}`, see docs/architecture.md; when the
prompt carries review feedback with such blocks, the last of those, as a reviewer's script is the
change they asked for), sleeps, applies the edits relative to its working directory, and prints
JSON lines: `{"type":"start"}`, `{"type":"edit","path":...}` per edit, then
`{"type":"result","status":"success","summary":...}` (exit 0) or
`{"type":"result","status":"error","message":...}` (exit 1).

Two steward rounds: a prompt with failing checks to fix (``## Failing checks to fix``) runs the
script's ``fix`` script when it has one (the change that makes the checks pass); a prompt to
resolve conflicts (``# Resolve the conflicts of``) runs the script's ``resolve`` script when it has
one, and otherwise resolves each conflicted file it names by keeping both sides: the base's lines
first, then this task's lines the base does not have (as a careful agent would for two changes
that each add lines).

A planning prompt (a plan job's: ``$STONEFORGE_PLAN_FILE`` is set, or the prompt names its
``Plan file:``) holds the epic, whose one fenced block with info string `stoneforge-plan` is the
plan to write (JSON, `schema/plan.schema.json`): the agent writes it to the plan file and reports
success. With `"invalid_first": true` at its top level, the first try writes a plan with a
dependency cycle instead, and the real one once the prompt lists the errors of the last plan.

A review prompt (a review job's: ``$STONEFORGE_REVIEW_FILE`` is set, or the prompt names its
``Review file:``) holds the issue, whose one fenced block with info string `stoneforge-review`
is the verdict to write (JSON: `{"event", "body", "comments"}`), or `{"rounds": [verdict, ...]}`:
the verdict of the prompt's `Review round: N`, the last one for any later round.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*stoneforge-script[ \t]*\n"
    r"(?P<body>.*?)\n[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
EDIT_KINDS = ("write", "replace", "append")
PLAN_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*stoneforge-plan[ \t]*\n"
    r"(?P<body>.*?)\n[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
# runner.prompt.PLAN_FILE_LINE and PLAN_ERRORS_HEADING (this module imports nothing of ours)
PLAN_FILE_LINE = re.compile(r"^Plan file: `(?P<path>[^`\n]+)`$", re.MULTILINE)
PLAN_ERRORS_HEADING = "## Your plan was not valid"
PLAN_FILE_ENV = "STONEFORGE_PLAN_FILE"
PLAN_CONTROL_KEYS = ("invalid_first",)
REVIEW_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*stoneforge-review[ \t]*\n"
    r"(?P<body>.*?)\n[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
# runner.prompt_review.REVIEW_FILE_LINE and REVIEW_ROUND_LINE, runner.review.REVIEW_FILE_ENV
REVIEW_FILE_LINE = re.compile(r"^Review file: `(?P<path>[^`\n]+)`$", re.MULTILINE)
REVIEW_ROUND_LINE = re.compile(r"^Review round: (?P<round>\d+) of \d+", re.MULTILINE)
REVIEW_FILE_ENV = "STONEFORGE_REVIEW_FILE"


class ScriptError(Exception):
    pass


REVIEW_HEADING = "## Review feedback to address"
CHECKS_HEADING = "## Failing checks to fix"  # runner.prompt's, for a fix_checks job
RESOLVE_TITLE = "# Resolve the conflicts of"  # runner.prompt.build_resolve_prompt's first line
CONFLICTED = re.compile(r"^## `(?P<name>[^`\n]+)` \(with the conflict markers\)$", re.MULTILINE)


def resolve_both(text: str) -> str:
    """``text`` without conflict markers: each conflict becomes the first side's lines, then
    the second side's lines the first does not have (a diff3 base section is dropped)."""
    out: list[str] = []
    ours: list[str] = []
    theirs: list[str] = []
    where = ""  # "", "ours", "base", "theirs"
    for line in text.splitlines(keepends=True):
        if line.startswith("<<<<<<<") and not where:
            where, ours, theirs = "ours", [], []
        elif line.startswith("|||||||") and where == "ours":
            where = "base"
        elif line.startswith("=======") and where in ("ours", "base"):
            where = "theirs"
        elif line.startswith(">>>>>>>") and where == "theirs":
            out += ours + [x for x in theirs if x not in ours]
            where = ""
        elif where == "ours":
            ours.append(line)
        elif where == "theirs":
            theirs.append(line)
        elif not where:
            out.append(line)
    if where:
        raise ScriptError("a conflict without its closing marker")
    return "".join(out)


def resolve_conflicts(prompt: str, root: Path) -> list[str]:
    """Resolve every file the resolve prompt names (relative to ``root``); their names."""
    names = CONFLICTED.findall(prompt)
    if not names:
        raise ScriptError("a resolve prompt that names no conflicted file")
    for name in names:
        target = resolve(root, name)
        target.write_text(resolve_both(target.read_text(encoding="utf-8")), encoding="utf-8")
    return names


def _resolve_script(prompt: str) -> dict[str, Any] | None:
    """The ``resolve`` script of the task's one script block, if it has one."""
    blocks = FENCE.findall(prompt)
    if len(blocks) != 1:
        return None
    try:
        script = json.loads(blocks[0][1])
    except ValueError:
        return None
    found = script.get("resolve") if isinstance(script, dict) else None
    return found if isinstance(found, dict) else None


def parse_script(prompt: str) -> dict[str, Any]:
    _, heading, feedback = prompt.partition(REVIEW_HEADING)
    blocks = FENCE.findall(feedback)[-1:] if heading else []
    blocks = blocks or FENCE.findall(prompt)
    if len(blocks) != 1:
        raise ScriptError(f"expected one stoneforge-script block, found {len(blocks)}")
    try:
        script = json.loads(blocks[0][1])
    except ValueError as exc:
        raise ScriptError(f"stoneforge-script block is not valid JSON: {exc}") from None
    if not isinstance(script, dict):
        raise ScriptError("stoneforge-script block must hold a JSON object")
    if CHECKS_HEADING in prompt and isinstance(script.get("fix"), dict):
        script = script["fix"]  # the change that makes the red checks pass
    elif prompt.lstrip().startswith(RESOLVE_TITLE) and isinstance(script.get("resolve"), dict):
        script = script["resolve"]  # the resolution, written out
    sleep = script.get("sleep", 0)
    if isinstance(sleep, bool) or not isinstance(sleep, int | float) or sleep < 0:
        raise ScriptError("'sleep' must be a non-negative number")
    edits = script.get("edits", [])
    if not isinstance(edits, list) or not all(isinstance(e, dict) for e in edits):
        raise ScriptError("'edits' must be a list of objects")
    if not isinstance(script.get("summary", ""), str):
        raise ScriptError("'summary' must be a string")
    return dict(script)


def resolve(root: Path, rel: object) -> Path:
    if not isinstance(rel, str) or not rel:
        raise ScriptError("edit 'path' must be a non-empty string")
    if Path(rel).is_absolute():
        raise ScriptError(f"absolute path not allowed: {rel}")
    target = (root / rel).resolve()
    if target == root or not target.is_relative_to(root):
        raise ScriptError(f"path escapes the working directory: {rel}")
    if ".git" in target.relative_to(root).parts:
        raise ScriptError(f"path inside .git not allowed: {rel}")
    return target


def apply_edit(root: Path, edit: dict[str, Any]) -> str:
    target = resolve(root, edit.get("path"))
    kinds = [k for k in EDIT_KINDS if k in edit]
    if len(kinds) != 1:
        choices = ", ".join(EDIT_KINDS)
        raise ScriptError(f"edit of {edit.get('path')} needs exactly one of {choices}")
    kind = kinds[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "write":
        target.write_text(_text(edit["write"], "write"))
    elif kind == "append":
        with target.open("a") as fh:
            fh.write(_text(edit["append"], "append"))
    else:
        pair = edit["replace"]
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ScriptError("'replace' must be [old, new]")
        old, new = _text(pair[0], "replace"), _text(pair[1], "replace")
        current = target.read_text() if target.is_file() else None
        if current is None or not old or old not in current:
            raise ScriptError(f"replace: text not found in {edit['path']}: {old!r}")
        target.write_text(current.replace(old, new, 1))
    return kind


def _text(value: object, kind: str) -> str:
    if not isinstance(value, str):
        raise ScriptError(f"'{kind}' content must be a string")
    return value


def plan_file(prompt: str) -> Path | None:
    """Where a planning prompt wants its plan; None for any other prompt."""
    if os.environ.get(PLAN_FILE_ENV):
        return Path(os.environ[PLAN_FILE_ENV])
    named = PLAN_FILE_LINE.findall(prompt)
    return Path(named[-1]) if named else None


def write_plan(prompt: str, target: Path) -> str:
    """Write the prompt's `stoneforge-plan` block to ``target``; the run's summary."""
    blocks = PLAN_FENCE.findall(prompt)
    if len(blocks) != 1:
        raise ScriptError(f"expected one stoneforge-plan block, found {len(blocks)}")
    try:
        plan = json.loads(blocks[0][1])
    except ValueError as exc:
        raise ScriptError(f"stoneforge-plan block is not valid JSON: {exc}") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("tasks"), list):
        raise ScriptError("stoneforge-plan block must hold a JSON object with a 'tasks' list")
    invalid = bool(plan.get("invalid_first")) and PLAN_ERRORS_HEADING not in prompt
    plan = {key: value for key, value in plan.items() if key not in PLAN_CONTROL_KEYS}
    if invalid:
        plan = with_cycle(plan)
    target.write_text(json.dumps(plan, indent=1) + "\n")
    kind = "an invalid plan (a cycle, on purpose)" if invalid else "the plan"
    return f"Wrote {kind} of {len(plan['tasks'])} tasks to {target}."


def review_file(prompt: str) -> Path | None:
    """Where a review prompt wants its verdict; None for any other prompt."""
    if os.environ.get(REVIEW_FILE_ENV):
        return Path(os.environ[REVIEW_FILE_ENV])
    named = REVIEW_FILE_LINE.findall(prompt)
    return Path(named[-1]) if named else None


def write_review(prompt: str, target: Path) -> str:
    """Write the verdict of the prompt's `stoneforge-review` block (for its round) to
    ``target``; the run's summary."""
    blocks = REVIEW_FENCE.findall(prompt)
    if len(blocks) != 1:
        raise ScriptError(f"expected one stoneforge-review block, found {len(blocks)}")
    try:
        review = json.loads(blocks[0][1])
    except ValueError as exc:
        raise ScriptError(f"stoneforge-review block is not valid JSON: {exc}") from None
    rounds = review.get("rounds") if isinstance(review, dict) else None
    if isinstance(rounds, list) and rounds:
        found = REVIEW_ROUND_LINE.search(prompt)
        index = int(found.group("round")) - 1 if found else 0
        review = rounds[min(max(index, 0), len(rounds) - 1)]
    if not isinstance(review, dict):
        raise ScriptError("stoneforge-review block must hold a JSON object (a verdict)")
    target.write_text(json.dumps(review, indent=1) + "\n")
    return f"Wrote the verdict {review.get('event')!r} to {target}."


def with_cycle(plan: dict[str, Any]) -> dict[str, Any]:
    """``plan`` with its first two tasks blocking each other (one task: blocking itself)."""
    tasks = [dict(task) if isinstance(task, dict) else task for task in plan["tasks"]]
    pairs = [(0, 1), (1, 0)] if len(tasks) > 1 else [(0, 0)]
    for index, blocker in pairs:
        if index < len(tasks) and isinstance(tasks[index], dict):
            tasks[index]["blockers"] = [*tasks[index].get("blockers", []), blocker]
    return {**plan, "tasks": tasks}


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="script_agent")
    parser.add_argument("--sleep-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    emit(type="start")
    prompt = sys.stdin.read()
    # A review job's verdict file, or a plan job's plan file: written, and the run is over.
    for find, write in ((review_file, write_review), (plan_file, write_plan)):
        target = find(prompt)
        if target is None:
            continue
        try:
            summary = write(prompt, target)
        except (ScriptError, OSError) as exc:
            emit(type="result", status="error", message=str(exc))
            return 1
        emit(type="edit", path=str(target), kind="write")
        emit(type="result", status="success", summary=summary)
        return 0
    if prompt.lstrip().startswith(RESOLVE_TITLE) and _resolve_script(prompt) is None:
        try:
            names = resolve_conflicts(prompt, Path.cwd().resolve())
        except (ScriptError, OSError) as exc:
            emit(type="result", status="error", message=str(exc))
            return 1
        for name in names:
            emit(type="edit", path=name, kind="resolve")
        emit(type="result", status="success", summary="Resolved the conflicts, keeping both.")
        return 0
    try:
        script = parse_script(prompt)
        time.sleep(float(script.get("sleep", 0)) * max(args.sleep_scale, 0.0))
        root = Path.cwd().resolve()
        for edit in script.get("edits", []):
            kind = apply_edit(root, edit)
            emit(type="edit", path=edit["path"], kind=kind)
    except (ScriptError, OSError) as exc:
        emit(type="result", status="error", message=str(exc))
        return 1
    emit(type="result", status="success", summary=script.get("summary", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
