"""Whose reviews count on an agent pull request, and the feedback a revision is given: reviews
by people with write access (and allowed bots) only, the App's own left out, except the review
agent's "changes requested" the task was sent back for (``bot.core.agent_review``)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from bot.core.agent_review import as_verdict
from bot.core.steward import VERDICT_STATES, Review, blocking_reviews, review_feedback
from bot.ports import PullPort


class Writers(Protocol):
    """Whose reviews count (``bot.issue_sync.IssueSync.is_writer``)."""

    async def is_writer(self, inst: int, repo: str, login: str, kind: str = "User") -> bool: ...


async def writer_reviews(
    github: PullPort,
    writers: Writers,
    inst: int,
    repo: str,
    number: int,
    reviews: list[Review] | None = None,
) -> tuple[Review, ...]:
    """The pull request's reviews by people with write access (and allowed bots), oldest first
    (``reviews``: all of them, when already read).

    Everyone else's reviews, and the App's own, are left out: like issue comments, a review
    is public input, and only collaborators may steer the agent or hold up a merge.
    """
    if reviews is None:
        reviews = await github.reviews(inst, repo, number)
    counts: dict[str, bool] = {}
    for review in reviews:
        if review.author not in counts:
            counts[review.author] = await writers.is_writer(
                inst, repo, review.author, review.author_type
            )
    return tuple(r for r in reviews if counts[r.author])


async def feedback_for(
    github: PullPort,
    writers: Writers,
    inst: int,
    repo: str,
    number: int,
    *,
    answering: int | None = None,
) -> tuple[list[str], int | None]:
    """The job's ``review_feedback`` for a pull request, and the newest review it holds.
    ``answering``: the review that sent the task back, counted even when it is the App's own
    (its review agent's "changes requested")."""
    everyone, comments = await asyncio.gather(
        github.reviews(inst, repo, number), github.review_comments(inst, repo, number)
    )
    people = await writer_reviews(github, writers, inst, repo, number, everyone)
    asked = next((r for r in everyone if r.id == answering and r not in people), None)
    agent = [as_verdict(asked)] if asked is not None else []
    if asked is not None and any(  # the App's later verdict (an approval) replaces it
        r.author == asked.author and r.id > asked.id and as_verdict(r).state in VERDICT_STATES
        for r in everyone
    ):
        agent = []
    reviews = tuple(sorted((*people, *agent), key=lambda r: r.id))
    newest = max((r.id for r in blocking_reviews(reviews)), default=None)
    return review_feedback(reviews, comments), newest
