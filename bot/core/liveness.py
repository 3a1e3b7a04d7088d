"""Nothing waits silently: when a pull request's wait deserves a comment, as a pure function.

The steward decides, for each task in review, one ``StewardAction``. A ``wait`` (with its
``WaitFor``) or an ``await_review`` is a wait; any other action ends it. The caller keeps, per
task, the wait it is in (``Waiting``: what for, since when, whether it was told) and passes it
back with each new action to ``follow_wait``, which says:

1. not a wait -> no wait is kept (a later wait starts its clock anew)
2. a wait for something else than the one kept (another ``wait_key``) -> a new wait, from ``now``
3. the same wait, already told, or waiting less than ``timeout_s`` -> kept as it is, no comment
4. the same wait, past ``timeout_s`` and not told -> told: one comment (``wait_notice``)

So each wait is told at most once, however many passes see it; a pull request that later waits
for something else past the timeout is told again. What "the same wait" is (``wait_key``): what
it waits for and on whom (the check's name, the blockers, the reviewers), not the queue position
or other words that change while it waits for the same thing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bot.core.lifecycle import AwaitingReview
from bot.core.steward import StewardAction, WaitFor

#: Hidden marker opening each wait comment (the wait's key follows it).
WAIT_MARKER = "<!-- stoneforge:wait"


@dataclass(frozen=True)
class Waiting:
    """A task's current wait: what for (``wait_key``), since when, and whether it was told."""

    key: str
    since: float
    told: bool = False


def wait_key(action: StewardAction) -> str | None:
    """What ``action`` waits for, as a stable key; None when it is no wait."""
    if action.kind == "await_review":
        people = action.why.reviewers if isinstance(action.why, AwaitingReview) else ()
        return "review:" + ",".join(sorted(p.lower() for p in people))
    if action.kind != "wait" or action.wait is None:
        return None
    match action.wait:
        case WaitFor.CHECKS | WaitFor.RERUN:
            return f"{action.wait.value}:{action.check or ''}"
        case WaitFor.BLOCKERS:
            return f"{action.wait.value}:" + ",".join(sorted(str(b) for b in action.blockers))
        case _:
            return action.wait.value


def follow_wait(
    action: StewardAction, held: Waiting | None, *, now: float, timeout_s: float
) -> tuple[Waiting | None, bool]:
    """The task's wait after ``action`` (None: it waits for nothing), and whether to tell the
    pull request now (rules in the module docstring)."""
    key = wait_key(action)
    if key is None:
        return None, False
    if held is None or held.key != key:
        held = Waiting(key, now)
    if held.told or now - held.since < timeout_s:
        return held, False
    return dataclasses.replace(held, told=True), True


def wait_notice(action: StewardAction, waited_s: float, *, key: str, labeler: str | None) -> str:
    """The comment telling a pull request what it waits for, in words, mentioning the person
    who labeled the task when known; marked with the wait's key."""
    what = _waits_for(action)
    lead = f"@{labeler}: this" if labeler else "This"
    text = f"{lead} pull request has waited {duration(waited_s)} {what}."
    if action.reason:
        text += f"\n\nThe steward's state: {action.reason}."
    return f"{WAIT_MARKER} {key} -->\n{text}"


def duration(seconds: float) -> str:
    """``seconds`` in words, rounded down: ``45 s``, ``12 min``, ``2 h``, ``3 d``."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 120 * 60:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def _waits_for(action: StewardAction) -> str:
    if action.kind == "await_review":
        people = action.why.reviewers if isinstance(action.why, AwaitingReview) else ()
        who = ", ".join(f"@{p}" for p in people) or "its reviewers"
        return f"for {who} to review it again (changes requested)"
    match action.wait:
        case WaitFor.SNAPSHOT:
            return "for the steward to read it from GitHub"
        case WaitFor.BLOCKERS:
            names = ", ".join(str(b) for b in action.blockers) or "its blockers"
            return f"for the tasks it depends on to merge first ({names})"
        case WaitFor.MERGEABILITY:
            return "for GitHub to compute whether it can be merged"
        case WaitFor.CHECKS:
            return f"for required check `{action.check}` to report"
        case WaitFor.RERUN:
            return f"for the re-run of required check `{action.check}` to report"
        case WaitFor.MERGE_AHEAD:
            return "in the merge queue, behind another pull request on its base"
        case WaitFor.FRONT:
            return "to reach the front of the merge queue (it is behind its base)"
        case WaitFor.APPROVALS:
            return "for the approving reviews a branch rule requires"
        case WaitFor.AGENT_REVIEW:
            return "for the review agent's requested changes, or a person's approval"
        case _:
            return "for GitHub to report it mergeable"
