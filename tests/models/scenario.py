"""The steps of a scripted conversation, independent of any provider's wire format.

A ``Script`` is the list of ``Turn``s the model server plays, one per model call that consumes
the script (side calls, such as a title generator, are answered apart by each server). A turn is
either a reply (``Say`` text and/or tool calls: ``Write``, ``Shell``, ``Tool``) or one failure
(``RateLimit``, ``Unauthorized``, ``Overflow``, ``ServerError``); ``Stall`` before a reply's
content holds the stream open silently. A ``Dialect`` names a CLI's own tools for ``Write`` and
``Shell``, so one scenario runs against every CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Write:
    """Ask the CLI's file-writing tool to write ``content`` to ``path``."""

    path: str
    content: str


@dataclass(frozen=True)
class Shell:
    """Ask the CLI's shell tool to run ``command``."""

    command: str


@dataclass(frozen=True)
class Tool:
    """A raw tool call by the CLI's own name (for instance one its permission mode denies)."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Say:
    """Assistant text; a turn with only text ends the CLI's run."""

    text: str


@dataclass(frozen=True)
class Stall:
    """Hold the stream open and silent for ``seconds`` before the rest of the turn."""

    seconds: float


@dataclass(frozen=True)
class RateLimit:
    """HTTP 429 in the provider's shape, with ``retry-after``."""

    retry_after_s: int = 60


@dataclass(frozen=True)
class Unauthorized:
    """HTTP 401 in the provider's shape (a bad API key)."""


@dataclass(frozen=True)
class Overflow:
    """The provider's context-length error (the prompt is longer than the model's window)."""


@dataclass(frozen=True)
class ServerError:
    """HTTP 500 (or ``status``, such as Anthropic's 529 overloaded, where a server knows it)."""

    status: int = 500


Step = Write | Shell | Tool | Say | Stall
Failure = RateLimit | Unauthorized | Overflow | ServerError


@dataclass(frozen=True)
class Turn:
    """One model call's answer: steps, or a failure; with the tokens the server reports."""

    steps: tuple[Step, ...] = ()
    failure: Failure | None = None
    input_tokens: int = 1200
    output_tokens: int = 40
    cached_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens, where the API reports it apart

    @property
    def stall_s(self) -> float:
        return sum(s.seconds for s in self.steps if isinstance(s, Stall))

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps if isinstance(s, Say))

    def calls(self, dialect: Dialect) -> list[tuple[str, dict[str, Any]]]:
        """The tool calls of this turn, in the CLI's own tool names."""
        out: list[tuple[str, dict[str, Any]]] = []
        for step in self.steps:
            if isinstance(step, Write):
                out.append(dialect.write(step.path, step.content))
            elif isinstance(step, Shell):
                out.append(dialect.shell(step.command))
            elif isinstance(step, Tool):
                out.append((step.name, dict(step.args)))
        return out


def reply(*steps: Step, **tokens: int) -> Turn:
    return Turn(steps=tuple(steps), **tokens)


def fail(failure: Failure) -> Turn:
    return Turn(failure=failure)


@dataclass(frozen=True)
class Dialect:
    """How one CLI names its write and shell tools (and their arguments)."""

    write: Callable[[str, str], tuple[str, dict[str, Any]]]
    shell: Callable[[str], tuple[str, dict[str, Any]]]


class Playbook(Protocol):
    """What a server asks for each model call that is not a side call.

    ``prompt`` is the text of the conversation's user messages (the task's prompt first);
    ``round`` counts the tool results already in the conversation (0 on its first call). A
    ``Script`` ignores both and plays in order; ``tests.models.sprint`` answers per task."""

    dialect: Dialect

    def next_turn(self, prompt: str = "", round: int = 0) -> Turn: ...


@dataclass
class Script:
    """The turns a server plays in order; past the end it says ``done`` and counts the extra."""

    turns: list[Turn]
    dialect: Dialect
    played: int = 0
    extra_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next_turn(self, prompt: str = "", round: int = 0) -> Turn:
        with self._lock:
            if self.played < len(self.turns):
                turn = self.turns[self.played]
                self.played += 1
                return turn
            self.extra_calls += 1
            return reply(Say("done"))

    @property
    def finished(self) -> bool:
        return self.played == len(self.turns)
