"""The one wait: for a condition, woken by what the system signals, polling only as a fallback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fakehub.server import FakeHub

POLL_S = 0.1  # the fallback: how often a condition nothing signals is looked at again

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A wait ran out of time; its message says what it waited for."""


@dataclass(frozen=True)
class Changes:
    """A count that only grows and the condition notified when it does: what wakes a wait."""

    cond: threading.Condition
    count: Callable[[], int]

    def wait(self, seen: int, timeout: float) -> None:
        """Return once the count has passed ``seen``, or after ``timeout`` seconds."""
        with self.cond:
            self.cond.wait_for(lambda: self.count() > seen, timeout)


def hub_changes(hub: FakeHub, type: str | None = None) -> Changes:
    """fakehub's event log: every label, push, check run, review and merge it records (only
    those of ``type`` when given)."""
    if type is None:
        return Changes(hub.state.logged, lambda: len(hub.state.log))
    return Changes(hub.state.logged, lambda: sum(e["type"] == type for e in hub.state.log))


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    what: str = "",
    *,
    woken_by: Changes | None = None,
    poll: float = POLL_S,
) -> T:
    """Return ``predicate()``'s first truthy value; fail after ``timeout`` seconds.

    With ``woken_by`` the predicate is looked at again as soon as that count grows (and at the
    latest after ``poll`` seconds, for changes it does not count); without, every ``poll``
    seconds. A predicate that asks another process should count only the changes it waits for
    and poll no faster than before: the process under test shares the machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = woken_by.count() if woken_by else 0
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what or predicate}")
        if woken_by is None:
            time.sleep(min(poll, remaining))
        else:
            woken_by.wait(seen, min(poll, remaining))
