"""What a review job's result does to its task (``bot.results`` hands it over: the task's reason
is ``Reviewing``).

- ``reviewed`` on the head it was sent for: the verdict is posted as the App's review of that
  head, with its line comments (those GitHub will not place go in the body). GitHub refuses an
  approval or a change request by a pull request's author, and the App opens every agent pull
  request: it is a ``COMMENT`` review whose body starts with the verdict's marker
  (``bot.core.agent_review.verdict_marker``), which the steward reads back as the verdict.
- anything else (the agent failed, the branch moved, GitHub refused the review): no review was
  given; it is said on the pull request (``review.required`` then decides whether the head may
  merge without one: ``bot.core.agent_review``).

Either way the task goes back to review (its attempt was given back as the steward sent it), and
the steward is woken. A rate limit or a runner's shutdown is not handled here: ``bot.results``
queues the same review again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.adapters.github import GitHubError
from bot.core.agent_review import verdict_marker
from bot.core.lifecycle import Reviewing
from bot.core.model import IssueRef, Task, TaskState
from bot.core.protocol import FailedResult, JobResult, ReviewedResult
from bot.ports import Configs, ResultPort, Transitions
from bot.signals import Signals

DETAIL_LIMIT = 2000  # characters of a failure's detail said on the pull request


class ReviewResults:
    def __init__(
        self, github: ResultPort, repos: Configs, views: Transitions, signals: Signals
    ) -> None:
        self.github = github
        self.repos = repos
        self.views = views
        self.signals = signals

    async def done(
        self, task: Task, reviewing: Reviewing, result: JobResult, totals: Mapping[str, Any]
    ) -> None:
        """A review job ended: post its verdict as the App's review of the head it reviewed,
        or say on the pull request that none was given; back to review either way (the
        steward reads the verdict from GitHub)."""
        why = ""
        if isinstance(result, ReviewedResult) and result.head_sha == reviewing.head:
            if not await self._post(task, reviewing, result):
                why = "GitHub refused the review"
        elif isinstance(result, ReviewedResult):
            why = f"its verdict names another head, {result.head_sha[:12]}"
        else:
            word = result.reason.value if isinstance(result, FailedResult) else result.outcome
            why = f"{word}: {(result.detail or '').strip()[:DETAIL_LIMIT]}".strip(": ")
        await self.views.transition(task, TaskState.IN_REVIEW, None, **totals)
        config = self.repos.config(task.repo).review
        if why and task.installation_id:
            then = (
                "It waits for a person's approval, or a new head."
                if config is not None and config.required
                else "The review is not required: the steward goes on without it."
            )
            await self.github.upsert_comment(
                task.installation_id,
                IssueRef(task.repo, reviewing.pr),
                f"<!-- stoneforge:review-not-given-{reviewing.head[:12]} -->",
                f"The review agent did not review {reviewing.head[:12]}: {why}\n\n{then}",
            )
        self.signals.steward_wake.set()

    async def _post(self, task: Task, reviewing: Reviewing, result: ReviewedResult) -> bool:
        """The verdict as the App's review of the head it reviewed. GitHub refuses an approval
        or a change request by the pull request's author, the App: it is a ``COMMENT`` review
        whose body starts with its verdict's marker (``bot.core.agent_review``), with the line
        comments; those GitHub will not place go in the body instead."""
        inst = task.installation_id or 0
        lines = tuple((c.path, c.line, c.body) for c in result.comments)
        said = "approves" if result.event == "APPROVE" else "requests changes"
        head = (
            f"{verdict_marker(result.event)}\n**The review agent {said}** (round {reviewing.round})"
        )
        body = head + (f"\n\n{result.body.strip()}" if result.body.strip() else "")
        for attempt in (lines, ()) if lines else ((),):
            text = body
            if lines and not attempt:
                text += "\n\n" + "\n".join(f"- `{p}:{n}`: {b}" for p, n, b in lines)
            try:
                await self.github.submit_review(
                    inst,
                    task.repo,
                    reviewing.pr,
                    commit_id=reviewing.head,
                    event="COMMENT",
                    body=text,
                    comments=attempt,
                )
                return True
            except GitHubError as exc:
                if exc.status != 422 or not attempt:
                    return False
        return False
