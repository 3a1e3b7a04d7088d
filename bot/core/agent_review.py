"""Review by an agent (``review`` in ``.github/stoneforge.yml``): the steward's rule, pure.

``plan_merges`` asks ``decide_agent_review`` about a pull request once everything else would
let it merge (blockers merged, required checks green, up to date with its base, no person's
"changes requested" standing), before it counts people's approvals. The App's review is kept
apart from people's (``PullSnapshot.agent_review``: its latest verdict on the current head),
and the task remembers the head a review job was last sent for (``Task.agent_review_head``)
and the review rounds sent back to its agent (``Task.agent_review_rounds``). The rules, first
match wins:

1. the review agent approved the current head -> go on (None)
2. a person (write access) approved after the agent's verdict, or on the current head when
   the agent gave none -> go on: a person's review always outranks the agent's (and a
   person's "changes requested" already held the pull request before this rule)
3. the agent requested changes on the current head: already handed to the task's agent
   (``task.review_id``) -> ``wait``; in a round before ``max_rounds`` -> ``revise`` (the same
   revision loop as a person's review, the round counted on the task); in the last round ->
   ``fail``, quoting the review
4. a review job was already sent for this head and left no verdict (it failed, or its review
   was dismissed): ``required`` -> ``wait`` for a person's approval or a new head; not
   required -> go on (a review that could not be given does not hold the merge back)
5. otherwise -> ``review``: a review job for this head, round ``agent_review_rounds + 1``

GitHub refuses an approval or a change request by a pull request's author, and the App opens
every agent pull request: the verdict is posted as a ``COMMENT`` review (with its line
comments) whose body starts with ``verdict_marker(event)``; ``as_verdict`` reads it back as the
verdict it is. A real ``APPROVED`` or ``CHANGES_REQUESTED`` review by the App counts as well.

An approval by the App never counts toward the approvals a branch rule requires
(``bot.core.steward.approving_people`` counts people only), as on GitHub: the review agent adds
to a required human review, it does not replace one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.lifecycle import ChangesRequested, Failed, Reviewing
from bot.core.model import Task
from bot.core.steward import VERDICT_STATES, PullSnapshot, Review, StewardAction, WaitFor

QUOTE_CAP = 3000  # characters of the last review quoted when a task fails
#: a review event -> the state of a review that gives it
EVENT_STATES = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}
_MARKED = re.compile(r"\A<!-- stoneforge:review-verdict (APPROVE|REQUEST_CHANGES) -->\n*")


def verdict_marker(event: str) -> str:
    """The first line of the App's review that gives ``event`` as a ``COMMENT`` review."""
    return f"<!-- stoneforge:review-verdict {event} -->"


def as_verdict(review: Review) -> Review:
    """The App's ``review`` as the verdict it gives: a ``COMMENTED`` review marked with
    ``verdict_marker`` gets the marked state, and its body without the marker."""
    marked = _MARKED.match(review.body) if review.state == "COMMENTED" else None
    if marked is None:
        return review
    state = EVENT_STATES[marked.group(1)]
    return dataclasses.replace(review, state=state, body=review.body[marked.end() :])


@dataclass(frozen=True)
class ReviewPolicy:
    """``review`` of a repository's configuration, as the steward applies it."""

    required: bool = False
    max_rounds: int = 2


def decide_agent_review(
    task: Task, pull: PullSnapshot, policy: ReviewPolicy
) -> StewardAction | None:
    """What the review agent's part asks for (see the module doc); None: nothing holds it."""
    ref, pr, sha = task.ref, pull.number, pull.head_sha
    verdict = pull.agent_review
    if verdict is not None and verdict.commit_id not in (None, sha):
        verdict = None  # an earlier head's: not this one's
    if verdict is not None and verdict.state == "APPROVED":
        return None
    if person_approved(pull, after=verdict.id if verdict is not None else None):
        return None
    rnd = task.agent_review_rounds + 1
    of = f"round {rnd} of {policy.max_rounds}"
    if verdict is not None and verdict.state == "CHANGES_REQUESTED":
        if task.review_id is not None and task.review_id >= verdict.id:
            words = f"the review agent requested changes ({of}); waiting for the revision"
            return _wait(task, pull, words)
        if rnd < policy.max_rounds:
            return StewardAction(
                "revise",
                ref,
                pr,
                sha,
                f"changes requested by the review agent ({of})",
                review_id=verdict.id,
                why=ChangesRequested(verdict.author, verdict.id),
            )
        why = f"the review agent requested changes in {of}"
        body = verdict.body.strip()
        if body:
            body = body if len(body) <= QUOTE_CAP else body[:QUOTE_CAP] + "\n[...]"
            why += ":\n\n" + "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
        return StewardAction("fail", ref, pr, sha, why, why=Failed(why, pr))
    if task.agent_review_head == sha:
        if not policy.required:
            return None
        return _wait(
            task,
            pull,
            f"the review agent gave no verdict on {sha[:12]}; waiting for a person's approval",
        )
    return StewardAction("review", ref, pr, sha, f"reviewing ({of})", why=Reviewing(pr, sha, rnd))


def agent_verdict(reviews: Sequence[Review], login: str | None, head: str) -> Review | None:
    """The App's (``login``) latest verdict among ``reviews`` if it is on ``head``: its review
    agent's approval, change request or dismissed review of the current head."""
    if not login:
        return None
    mine = [
        v for r in reviews if r.author == login and (v := as_verdict(r)).state in VERDICT_STATES
    ]
    latest = max(mine, key=lambda r: r.id, default=None)
    return latest if latest is not None and latest.commit_id == head else None


def person_approved(pull: PullSnapshot, *, after: int | None) -> bool:
    """Whether a person's latest verdict approves: after review ``after`` (the agent's), or
    with none, on the current head."""
    verdicts = {}
    for review in sorted(pull.reviews, key=lambda r: r.id):
        if review.state in VERDICT_STATES:
            verdicts[review.author.lower()] = review
    for review in verdicts.values():
        if review.state != "APPROVED" or review.author_type != "User":
            continue
        if (after is not None and review.id > after) or (
            after is None and review.commit_id == pull.head_sha
        ):
            return True
    return False


def _wait(task: Task, pull: PullSnapshot, reason: str) -> StewardAction:
    return StewardAction(
        "wait", task.ref, pull.number, pull.head_sha, reason, wait=WaitFor.AGENT_REVIEW
    )
