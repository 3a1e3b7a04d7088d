"""Comment commands: ``/stoneforge <verb> [arguments]`` in an issue comment. Pure.

``parse_command(body)`` finds the first line that starts with ``/stoneforge`` outside fenced
code blocks, inline code, block quotes and HTML comments (a quoted or pasted command is not a
command), and returns the verb and its argument text. A verb it does not know is ``UNKNOWN``
(the bot answers with ``HELP_TEXT``); a known verb with bad arguments carries ``error``.

Who may run a command, and whether a comment was already acted on, is the shell's business
(``bot/handlers/comments.py``): this module only reads text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "/stoneforge"


class Verb(StrEnum):
    PLAN = "plan"
    APPROVE = "approve"
    REPLAN = "replan"
    STATUS = "status"
    RETRY = "retry"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    PRIORITY = "priority"
    HELP = "help"
    #: a ``/stoneforge`` line whose verb is none of the above: answered with the help text
    UNKNOWN = "unknown"


#: Verbs that change something: only writers may run them (``status`` and ``help`` read).
WRITING_VERBS = frozenset(Verb) - {Verb.STATUS, Verb.HELP, Verb.UNKNOWN}


@dataclass(frozen=True)
class Command:
    verb: Verb
    #: the rest of the command's line, then any lines after it (guidance for plan/replan)
    args: str = ""
    #: ``priority``'s level, 0..4
    priority: int | None = None
    #: what is wrong with the arguments, in words (the bot replies with it)
    error: str | None = None
    #: the verb as written (for an unknown one)
    word: str = ""


HELP_TEXT = """\
**Stoneforge commands** (comment one on an issue; writers only, except `status` and `help`):

| command | what it does |
| --- | --- |
| `/stoneforge plan [guidance]` | a director agent drafts sub-issues with dependencies |
| `/stoneforge approve` | run the draft plan: its tasks get the trigger label |
| `/stoneforge replan [guidance]` | close unstarted tasks of the plan and plan the rest again |
| `/stoneforge status` | the plan's or the task's state, as a reply |
| `/stoneforge retry` | queue a failed or cancelled task (or a plan's failed tasks) again |
| `/stoneforge cancel` | stop the task (or every unfinished task of the plan) |
| `/stoneforge pause` | hold the task, the plan, or (on the control issue) the repository |
| `/stoneforge resume` | release what `pause` held |
| `/stoneforge priority p0..p4` | set the task's priority (p0 most urgent) |
| `/stoneforge help` | this text |
"""

_FENCE_RE = re.compile(
    r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=fence)[`~]*[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_HTML_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_INLINE_CODE_RE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
_COMMAND_RE = re.compile(
    rf"^[ \t]{{0,3}}{re.escape(PREFIX)}(?![^\s])(?:[ \t]+(?P<word>\S+))?(?P<rest>[^\n]*)$"
)
_PRIORITY_RE = re.compile(r"^\s*[pP]?([0-4])\s*$")


def _visible_lines(body: str) -> list[str]:
    """The comment's lines with code, quotes and hidden comments blanked out."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    text = _FENCE_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = _HTML_COMMENT_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    lines = []
    for line in text.split("\n"):
        if line.lstrip().startswith(">"):
            lines.append("")  # a block quote: someone else's words
            continue
        lines.append(_INLINE_CODE_RE.sub("", line) if "`" in line else line)
    return lines


def parse_command(body: str | None) -> Command | None:
    """The comment's command, or None when it holds none (see the module's docstring)."""
    if not body or PREFIX not in body:
        return None
    lines = _visible_lines(body)
    for n, line in enumerate(lines):
        match = _COMMAND_RE.match(line)
        if match is None:
            continue
        word = (match.group("word") or "").strip()
        rest = (match.group("rest") or "").strip()
        tail = "\n".join(lines[n + 1 :]).strip()
        try:
            verb = Verb(word.casefold()) if word else Verb.HELP
        except ValueError:
            verb = Verb.UNKNOWN
        if verb is Verb.UNKNOWN:
            return Command(Verb.UNKNOWN, word=word)
        args = "\n".join(part for part in (rest, tail) if part) if verb in _PROSE else rest
        if verb is Verb.PRIORITY:
            level = _PRIORITY_RE.match(rest)
            if level is None:
                error = "say a level from p0 (most urgent) to p4"
                return Command(verb, rest, error=error, word=word)
            return Command(verb, rest, priority=int(level.group(1)), word=word)
        return Command(verb, args, word=word)
    return None


#: Verbs whose arguments are guidance in prose: the rest of the comment counts too.
_PROSE = frozenset({Verb.PLAN, Verb.REPLAN})
