"""What the parts of the bot tell each other without holding each other: wake-ups, the App's
own login, and where each repository's default branch was last seen."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.merge_queue import QueueNotes


@dataclass
class Identity:
    """The App's own account (``<slug>[bot]``), known once the App is looked up at start."""

    login: str | None = None

    def is_self(self, login: str | None) -> bool:
        return self.login is not None and login == self.login


@dataclass
class Signals:
    """Wake-ups shared by intake, the runners' claims and the steward."""

    #: set when a task may have become ready: waiting claims look again
    ready_changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: set when a pull request, check or base moved: the steward takes a pass
    steward_wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: repo -> (installation, sha): its default branch's tip, as last seen moving
    bases: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: what GitHub's merge queue said of each pull request (``merge_group`` and ``dequeued``)
    queue: QueueNotes = field(default_factory=QueueNotes)

    def note_base(self, repo: str, inst: int, sha: str) -> None:
        """The default branch of ``repo`` moved to ``sha`` (a push, or our own merge)."""
        self.bases[repo] = (inst, sha)
        self.ready_changed.set()  # idle claims look again: a runner may fetch it ahead
