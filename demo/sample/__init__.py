"""The demo's sample repository and the sprint a maintainer files against it, read from the
files beside this module.

- ``repo/`` is the initial commit of a small, framework-free Python users service with its own
  stdlib ``unittest`` suite (``CI_COMMAND``): ``SAMPLE_REPO`` maps each path to its text.
- ``sprint/NN-KEY.md`` is one issue of ``SPRINT``, filed in ``NN`` order. Its front matter holds
  the title, the labels, the blockers (``text``: named in the body as "Blocked by #{KEY}";
  ``native``: linked through GitHub's issue dependencies) and the ``stoneforge-script`` the
  demo's script agent runs (``sleep``, ``summary``, ``edits``; see docs/architecture.md, "The
  script agent"); the Markdown after it is the prose a maintainer would write. A ``write`` edit
  takes the whole file from ``sprint/NN-KEY/<path>``; ``replace`` (``old``, ``new``) and
  ``append`` (``text``) carry their text in the front matter. ``fix`` (``sleep``, ``summary``,
  ``edits``), when present, is what the agent changes once CI failed on its first push: the
  script agent runs it for the steward's fix_checks job (the demo's red check, fixed on the
  same branch).
- ``sprint/NN-KEY.review.md``, when present, is the review the maintainer submits on that
  issue's first pull request: prose, and the change it asks for in the same front matter.
- ``plan/epic.md`` is ``PLAN_EPIC``, the epic of ``stoneforge demo --plan``: its front matter
  holds the plan's summary, notes and tasks (each with a key, blockers by key, and the script
  its task's agent runs, ``write`` files taken from ``plan/<key>/<path>``); its body carries the
  whole plan in a ``stoneforge-plan`` block (JSON, ``schema/plan.schema.json``), which the
  script agent writes as the director. Every task adds new files only (a module and its test),
  so the tasks merge in any order their blockers allow and the tests pass after each.

Design rules the sprint keeps (tests/demo/test_sample.py proves them with real git):

- Every issue's blockers are filed before it, so `render_body` can name them by number.
- An edit only anchors (`replace`) on text that is on `main` whenever the issue can be dispatched,
  whatever order its independent siblings merged in; `write` is only used for files no
  independent task touches; `append` only for files with a single editor.
- Independent tasks that share a file (`app/api.py`) edit regions far apart, so git's 3-way
  merge ("Update branch") combines them cleanly in either order; except ``CONFLICTING``: two
  tasks that each add their line to the changelog at the same place, a real conflict the
  steward's rebase meets and the agent resolves (keeping both lines).
- After any set of merged tasks closed under "blocked by", the repository's tests pass.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CI_COMMAND",
    "CONFLICTING",
    "FULL",
    "OWNER",
    "PLAN_EPIC",
    "REPO",
    "SAMPLE_REPO",
    "SPRINT",
    "PlanEpic",
    "SprintIssue",
    "load_plan_epic",
    "load_repo",
    "load_sprint",
    "script_block",
    "sprint_subset",
]

OWNER, REPO = "octo", "demo"  # where the demo creates the sample repository
FULL = f"{OWNER}/{REPO}"
HERE = Path(__file__).resolve().parent
SCRIPT_INFO_STRING = "stoneforge-script"
#: The independent tasks that add lines at the same place of a file (the demo's conflict scene).
CONFLICTING: tuple[tuple[str, str, str], ...] = (("jwt", "fix-tests", "CHANGELOG.md"),)
PLAN_INFO_STRING = "stoneforge-plan"

# -B: no .pyc files, so fast successive checkouts never run stale bytecode.
CI_COMMAND: list[str] = [
    sys.executable,
    "-B",
    "-m",
    "unittest",
    "discover",
    "-s",
    "tests",
    "-t",
    ".",
    "-q",
]

_PLACEHOLDER = re.compile(r"#\{([a-z0-9-]+)\}")
_SCRIPT_BLOCK = re.compile(
    r"^```" + SCRIPT_INFO_STRING + r"\n(.*?)\n```$", re.DOTALL | re.MULTILINE
)
_ISSUE_FILE = re.compile(r"^(\d+)-([a-z0-9-]+)\.md$")
_ISSUE_KEYS = {"title", "labels", "blocked_by", "sleep", "summary", "edits", "fix"}
_REVIEW_KEYS = {"sleep", "summary", "edits"}
_BLOCKER_KEYS = {"text", "native"}
_EPIC_KEYS = {"title", "labels", "summary", "notes", "tasks"}
_TASK_KEYS = {"key", "title", "blocked_by", "priority", "size", "sleep", "body", "acceptance",
              "summary", "edits"}  # fmt: skip
_SKIP = {"__pycache__", ".pytest_cache"}


def script_block(script: dict[str, Any]) -> str:
    """Render a script as the fenced `stoneforge-script` block an issue body carries."""
    text = json.dumps(script, indent=2)
    if "```" in text:
        raise ValueError("a script must not contain a code fence")
    return f"```{SCRIPT_INFO_STRING}\n{text}\n```"


@dataclass(frozen=True, kw_only=True)
class SprintIssue:
    """One issue of the sprint.

    `body` names each text blocker as "Blocked by #{key}"; `render_body` swaps in the real issue
    numbers. Native blockers are linked through the issue-dependency API and not named in the body.
    """

    key: str
    title: str
    body: str
    blocked_by_text: tuple[str, ...] = ()
    blocked_by_native: tuple[str, ...] = ()
    labels: tuple[str, ...] = ("agent-ready",)
    sleep: float
    # What the maintainer says when this issue's pull request first opens: the demo requests
    # changes with it (its script block is the change asked for) and approves the revision.
    review: str | None = None

    def __post_init__(self) -> None:
        named = set(_PLACEHOLDER.findall(self.body))
        if named != set(self.blocked_by_text):
            raise ValueError(f"{self.key}: body names {sorted(named)}, text blockers differ")
        if self.script.get("sleep") != self.sleep:
            raise ValueError(f"{self.key}: script sleep differs from the issue's sleep")

    @property
    def blocked_by(self) -> tuple[str, ...]:
        return self.blocked_by_text + self.blocked_by_native

    @property
    def script(self) -> dict[str, Any]:
        match = _SCRIPT_BLOCK.search(self.body)
        if match is None:
            raise ValueError(f"{self.key}: no {SCRIPT_INFO_STRING} block")
        script: dict[str, Any] = json.loads(match.group(1))
        return script

    def render_body(self, numbers: Mapping[str, int]) -> str:
        """The body as filed: each "#{key}" becomes "#<issue number>" (KeyError if unknown)."""
        return _PLACEHOLDER.sub(lambda m: f"#{numbers[m.group(1)]}", self.body)


def load_repo(root: Path) -> dict[str, str]:
    """Every file under ``root`` (caches left out), by its POSIX path relative to ``root``."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and not _SKIP & set(path.relative_to(root).parts)
    }


def load_sprint(root: Path) -> tuple[SprintIssue, ...]:
    """The issues under ``root`` in filing order; ValueError names the file that is wrong."""
    found = sorted(
        (int(match.group(1)), match.group(2), path)
        for path in root.glob("*.md")
        if (match := _ISSUE_FILE.match(path.name))
    )
    issues = []
    for _, key, path in found:
        meta, prose = _front_matter(path, _ISSUE_KEYS)
        blockers = meta.get("blocked_by") or {}
        if not isinstance(blockers, dict) or set(blockers) - _BLOCKER_KEYS:
            raise ValueError(f"{path}: blocked_by takes only {sorted(_BLOCKER_KEYS)}")
        script = _script(meta, path.with_suffix(""), path)
        review = path.with_name(f"{path.stem}.review.md")
        issues.append(
            SprintIssue(
                key=key,
                title=str(meta["title"]),
                body=f"{prose}\n\n{script_block(script)}\n",
                blocked_by_text=tuple(blockers.get("text") or ()),
                blocked_by_native=tuple(blockers.get("native") or ()),
                labels=tuple(meta.get("labels") or ("agent-ready",)),
                sleep=float(meta["sleep"]),
                review=_review(review) if review.exists() else None,
            )
        )
    return tuple(issues)


def _review(path: Path) -> str:
    meta, prose = _front_matter(path, _REVIEW_KEYS)
    return f"{prose}\n\n{script_block(_script(meta, path.with_suffix(''), path))}"


def _front_matter(path: Path, allowed: set[str]) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    head, sep, prose = text.removeprefix("---\n").partition("\n---\n")
    if not text.startswith("---\n") or not sep:
        raise ValueError(f"{path}: no front matter between '---' lines")
    meta = yaml.safe_load(head + "\n")
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the front matter is not a mapping")
    unknown = set(meta) - allowed
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    return meta, prose.strip()


def _script(meta: dict[str, Any], files: Path, path: Path) -> dict[str, Any]:
    script = {
        "sleep": float(meta["sleep"]),
        "edits": [_edit(edit, files, path) for edit in meta["edits"]],
        "summary": str(meta["summary"]).strip(),
    }
    fix = meta.get("fix")
    if fix is not None:  # what the agent changes when CI went red on its first push
        if not isinstance(fix, dict) or set(fix) != _REVIEW_KEYS:
            raise ValueError(f"{path}: fix takes exactly {sorted(_REVIEW_KEYS)}")
        script["fix"] = _script(fix, files, path)
    return script


def _edit(edit: dict[str, Any], files: Path, path: Path) -> dict[str, Any]:
    if set(edit) == {"write"}:
        return {"path": edit["write"], "write": (files / edit["write"]).read_text(encoding="utf-8")}
    if set(edit) == {"replace", "old", "new"}:
        return {"path": edit["replace"], "replace": [edit["old"], edit["new"]]}
    if set(edit) == {"append", "text"}:
        return {"path": edit["append"], "append": edit["text"]}
    raise ValueError(f"{path}: an edit is write, replace (old, new) or append (text): {edit}")


@dataclass(frozen=True, kw_only=True)
class PlanEpic:
    """The epic of the plan demo: ``plan`` is the JSON its ``stoneforge-plan`` block holds
    (tasks' blockers by index), ``keys`` the tasks' keys in the plan's order."""

    title: str
    labels: tuple[str, ...]
    prose: str
    plan: dict[str, Any]
    keys: tuple[str, ...]

    @property
    def body(self) -> str:
        block = json.dumps(self.plan, indent=1)
        return f"{self.prose}\n\n```{PLAN_INFO_STRING}\n{block}\n```\n"


def load_plan_epic(root: Path) -> PlanEpic:
    """The epic under ``root`` (``epic.md`` and each task's files); ValueError says what is
    wrong."""
    path = root / "epic.md"
    meta, prose = _front_matter(path, _EPIC_KEYS)
    raw_tasks = meta["tasks"]
    keys = tuple(str(task["key"]) for task in raw_tasks)
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: task keys repeat")
    tasks = []
    for task in raw_tasks:
        unknown = set(task) - _TASK_KEYS
        if unknown:
            raise ValueError(f"{path}: task {task.get('key')}: unknown keys {sorted(unknown)}")
        script = _script(task, root / task["key"], path)
        missing = [key for key in task.get("blocked_by") or () if key not in keys]
        if missing:
            raise ValueError(f"{path}: task {task['key']}: unknown blockers {missing}")
        tasks.append({
            "title": str(task["title"]),
            "body": f"{str(task['body']).strip()}\n\n{script_block(script)}\n",
            "acceptance_criteria": [str(item) for item in task.get("acceptance") or ()],
            "blockers": [keys.index(key) for key in task.get("blocked_by") or ()],
            "priority": int(task.get("priority", 2)),
            "files": list(dict.fromkeys(edit["path"] for edit in script["edits"])),
            "size": str(task.get("size", "m")),
        })  # fmt: skip
    plan = {"summary": " ".join(str(meta["summary"]).split()),
            "notes": [" ".join(str(note).split()) for note in meta.get("notes") or ()],
            "tasks": tasks}  # fmt: skip
    return PlanEpic(title=str(meta["title"]), labels=tuple(meta.get("labels") or ()),
                    prose=prose, plan=plan, keys=keys)  # fmt: skip


def sprint_subset(sprint: tuple[SprintIssue, ...], keys: list[str]) -> tuple[SprintIssue, ...]:
    """The issues named by ``keys`` and everything they are blocked by, in filing order;
    KeyError names a key the sprint does not have."""
    by_key = {item.key: item for item in sprint}
    wanted: set[str] = set()
    todo = [key.strip() for key in keys if key.strip()]
    while todo:
        key = todo.pop()
        if key not in by_key:
            raise KeyError(key)
        if key not in wanted:
            wanted.add(key)
            todo += by_key[key].blocked_by
    return tuple(item for item in sprint if item.key in wanted)


SAMPLE_REPO: dict[str, str] = load_repo(HERE / "repo")
SPRINT: tuple[SprintIssue, ...] = load_sprint(HERE / "sprint")
PLAN_EPIC: PlanEpic = load_plan_epic(HERE / "plan")
