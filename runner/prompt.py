"""The text handed to a coding agent for one job, built by the runner from the job's fields.

Issue text and comments are untrusted: hidden HTML comments and invisible or bidirectional
control characters are stripped, so the agent reads what a maintainer sees on GitHub. Comments
inside fenced code blocks are visible on GitHub and stay. The output is a pure function of the
job, the worktree's instruction files and `failure` (snapshot-tested).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from bot.core.protocol import IssueComment, Job, ReviseJob

HANDOFF_FILE = ".stoneforge/handoff.md"
INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md")
INSTRUCTION_LIMIT = 20 * 1024  # bytes read from each instruction file

# Zero-width and bidi controls, word joiners and invisible operators, the BOM, and the Unicode
# "tag" block (used to smuggle invisible ASCII into prompts).
INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # GitHub hides an unclosed one too
FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CRITERIA_TITLE = re.compile(r"^\W*acceptance\s+criteria\W*$", re.IGNORECASE)
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?(.*\S)\s*$")

RULES = """\
## Rules

- Do not push, merge or create branches: the runner owns git. \
Leave your changes in the working tree.
- If you cannot finish (the task is too big, or you are running out of context or turns), ask for \
a handoff: write a file `.stoneforge/handoff.md` with what is done and what is left, then stop. \
The next attempt starts from your changes and that note."""


def strip_invisible(text: str) -> str:
    return INVISIBLE.sub("", text)


def clean_markdown(text: str) -> str:
    """Drop hidden HTML comments (outside code fences) and invisible characters."""
    text = strip_invisible(text.replace("\r\n", "\n"))
    out: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        match = FENCE_OPEN.match(line)
        if fence is None and match:
            out.append(HTML_COMMENT.sub("", "\n".join(prose)))
            prose, fence = [], match.group(1)
            out.append(line)
        elif fence is not None:
            out.append(line)
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
        else:
            prose.append(line)
    out.append(HTML_COMMENT.sub("", "\n".join(prose)))
    return "\n".join(out).strip()


def acceptance_criteria(body: str) -> list[str]:
    """The items of the body's "Acceptance criteria" section (a heading, bold line or label)."""
    lines = body.split("\n")
    for index, line in enumerate(lines):
        heading = HEADING.match(line)
        title = heading.group(2) if heading else line.strip().strip("*_")
        if not CRITERIA_TITLE.match(title):
            continue
        level = len(heading.group(1)) if heading else 7
        section: list[str] = []
        for rest in lines[index + 1 :]:
            sub = HEADING.match(rest)
            if sub and len(sub.group(1)) <= level or (not heading and _is_label(rest)):
                break
            section.append(rest)
        listed = [m.group(1) for m in map(LIST_ITEM.match, section) if m]
        return listed or [line.strip() for line in section if line.strip()]
    return []


def _is_label(line: str) -> bool:
    stripped = line.strip()
    return bool(HEADING.match(line)) or (stripped.startswith("**") and stripped.endswith("**"))


def read_instructions(worktree: Path) -> list[tuple[str, str]]:
    """(file name, text) for each agent instruction file at the worktree's root."""
    found = []
    root = worktree.resolve()
    for name in INSTRUCTION_FILES:
        path = worktree / name
        try:
            if not path.is_file() or not path.resolve().is_relative_to(root):
                continue  # a symlink out of the worktree could leak the host's files
            with path.open("rb") as fh:
                data = fh.read(INSTRUCTION_LIMIT + 1)
        except OSError:
            continue
        text = strip_invisible(data[:INSTRUCTION_LIMIT].decode("utf-8", "replace")).strip()
        if len(data) > INSTRUCTION_LIMIT:
            text += f"\n\n[... {name} truncated at {INSTRUCTION_LIMIT // 1024} KB]"
        if text:
            found.append((name, text))
    return found


def build_prompt(job: Job, worktree: Path, *, failure: str | None = None) -> str:
    """The agent's prompt for `job`; with `failure`, the prompt of the retry after that failure."""
    title = " ".join(strip_invisible(job.title).split())
    body = clean_markdown(job.body)
    parts = [f"# {title} (#{job.issue})" if title else f"# Task #{job.issue}"]
    parts.append(f"Repository: {job.repo}")
    if body:
        parts.append(body)
    parts += _comments(job.comments)
    for name, text in read_instructions(worktree):
        parts.append(f"## Repository instructions ({name})\n\n{text}")
    notes = [clean_markdown(n) for n in job.handoff_notes]
    if notes := [n for n in notes if n]:
        parts.append("## Notes from earlier attempts (oldest first)\n\n" + _continuing(job))
        parts += [f"### Attempt {i}\n\n{note}" for i, note in enumerate(notes, 1)]
    review = job.review_feedback if isinstance(job, ReviseJob) else ()
    feedback = [clean_markdown(f) for f in review]
    if feedback := [f for f in feedback if f]:
        parts.append(_feedback_section(feedback))
    if failure:
        parts.append(_failure_section(failure))
    parts.append(RULES)
    if criteria := acceptance_criteria(body):
        parts.append(
            "## Acceptance criteria (check each before you stop)\n\n" + _checklist(criteria)
        )
    return "\n\n".join(parts) + "\n"


def build_followup(failure: str) -> str:
    """The prompt of a try that resumes the agent's session: it has the task, so only the news."""
    return "\n\n".join([_failure_section(failure), RULES]) + "\n"


def _failure_section(failure: str) -> str:
    return (
        "## Your previous try did not pass\n\n"
        "Your changes so far are still in the working tree. Fix what went wrong:\n\n"
        f"````text\n{strip_invisible(failure).strip()}\n````"
    )


def _feedback_section(feedback: Iterable[str]) -> str:
    """Review feedback as a list: each review's text, then its inline comments (path:line)."""
    items = []
    for text in feedback:
        first, *rest = text.split("\n")
        items.append("- " + "\n".join([first, *(f"  {line}" if line else "" for line in rest)]))
    return (
        "## Review feedback to address\n\n"
        "A reviewer requested changes on this task's pull request. Your earlier work is\n"
        "already in the working tree: address every point below (change the code, or say in\n"
        "your final message why a point needs no change) and keep the rest of the work.\n\n"
        + "\n".join(items)
    )


def _continuing(job: Job) -> str:
    if job.restart:
        return "This attempt starts afresh from the base branch; earlier work was discarded."
    return "The work of earlier attempts is already in the working tree; continue from it."


def _comments(comments: Iterable[IssueComment]) -> list[str]:
    blocks = []
    for comment in comments:
        text = clean_markdown(comment.body)
        if text:
            author = strip_invisible(comment.author or "unknown")
            blocks.append(f"### @{author}\n\n{text}")
    return ["## Comments on the issue", *blocks] if blocks else []


def _checklist(items: Iterable[str]) -> str:
    return "\n".join(f"- [ ] {item}" for item in items)
