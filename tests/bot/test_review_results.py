"""What a review job's result does (``bot.results``), with typed fakes: a verdict is posted as
the App's COMMENT review marked with its verdict (line comments GitHub refuses go in the body);
a rate limit or a shutdown queues the same review; a failure is said on the pull request, and
the task goes back to review either way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.github import GitHubError
from bot.core.agent_review import agent_verdict, verdict_marker
from bot.core.config import RepoConfig
from bot.core.lifecycle import Reviewing
from bot.core.model import Task, TaskState
from bot.core.protocol import (
    FailedResult,
    FailureReason,
    HandoffReason,
    HandoffResult,
    JobResult,
    RateLimitedResult,
    ReviewedResult,
    ReviewLine,
)
from bot.core.steward import Review, ReviewComment
from bot.results import Results
from bot.signals import Signals
from bot.store import Store
from bot.writer_reviews import feedback_for
from tests.bot.test_results import _GitHub, _Views

HEAD = "a" * 40
REVIEWING = Reviewing(12, HEAD, 1)


class _ReviewingGitHub(_GitHub):
    def __init__(self, refuse_lines: bool = False) -> None:
        super().__init__()
        self.refuse_lines = refuse_lines
        self.reviews: list[dict[str, Any]] = []

    async def submit_review(
        self, installation_id: int, repo: str, number: int, *, commit_id: str, event: str,
        body: str, comments: Sequence[tuple[str, int, str]] = (),
    ) -> int:  # fmt: skip
        if comments and self.refuse_lines:
            raise GitHubError(422, "Line could not be resolved")
        self.reviews.append({"number": number, "commit_id": commit_id, "event": event,
                             "body": body, "comments": list(comments)})  # fmt: skip
        return 77


class _Required:
    def config(self, repo: str) -> RepoConfig:
        return RepoConfig.model_validate({"review": {"agent": "script", "required": True}})


def _apply(tmp_path: Path, result: JobResult, github: _ReviewingGitHub) -> tuple[_Views, Signals]:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    views, signals = _Views(store), Signals()
    results = Results(github, store, _Required(), views, signals, public_url="",  # type: ignore[arg-type]
                      clock=lambda: 1000.0)  # fmt: skip
    task = Task(repo="octo/app", number=7, title="t", state=TaskState.RUNNING, attempt=2,
                branch="stoneforge/7-t", installation_id=1, pr_number=12, head_sha=HEAD,
                reason=REVIEWING, agent_review_head=HEAD)  # fmt: skip
    store.upsert_task(task)
    try:
        asyncio.run(results.apply(task, result))
    finally:
        store.close()
    return views, signals


def test_a_verdict_is_posted_as_the_apps_marked_comment_review(tmp_path: Path) -> None:
    github = _ReviewingGitHub()
    verdict = ReviewedResult(head_sha=HEAD, event="REQUEST_CHANGES", body="Page it.",
                             comments=(ReviewLine(path="a.py", line=3, body="here"),))  # fmt: skip
    views, signals = _apply(tmp_path, verdict, github)
    ((posted),) = github.reviews
    assert (posted["number"], posted["commit_id"], posted["event"]) == (12, HEAD, "COMMENT")
    assert posted["comments"] == [("a.py", 3, "here")]
    assert "Page it." in posted["body"]
    # read back as the verdict it gives
    review = Review(77, "app[bot]", "COMMENTED", posted["body"], HEAD, "Bot")
    found = agent_verdict([review], "app[bot]", HEAD)
    assert found is not None
    assert found.state == "CHANGES_REQUESTED"
    ((to, reason, fields),) = views.changes
    assert (to, reason) == (TaskState.IN_REVIEW, None)
    assert "attempt" not in fields, "the steward gave the attempt back as it sent the review"
    assert github.comments == []
    assert signals.steward_wake.is_set()


def test_line_comments_github_refuses_go_in_the_body(tmp_path: Path) -> None:
    github = _ReviewingGitHub(refuse_lines=True)
    verdict = ReviewedResult(head_sha=HEAD, event="APPROVE",
                             comments=(ReviewLine(path="a.py", line=300, body="nit"),))  # fmt: skip
    _apply(tmp_path, verdict, github)
    ((posted),) = github.reviews
    assert posted["comments"] == []
    assert "- `a.py:300`: nit" in posted["body"]
    assert "The review agent approves" in posted["body"]


@pytest.mark.parametrize(
    "result",
    [
        RateLimitedResult(agent="claude", retry_at=4600.0),
        HandoffResult(reason=HandoffReason.RUNNER_SHUTDOWN),
    ],
    ids=["rate-limited", "shutdown"],
)
def test_a_review_rate_limited_or_stopped_is_queued_as_the_same_review(
    tmp_path: Path, result: JobResult
) -> None:
    github = _ReviewingGitHub()
    views, _ = _apply(tmp_path, result, github)
    ((to, reason, fields),) = views.changes
    assert (to, reason, fields["attempt"]) == (TaskState.QUEUED, REVIEWING, 1)
    assert github.reviews == []


def test_a_failed_review_is_said_and_the_task_goes_back_to_review(tmp_path: Path) -> None:
    github = _ReviewingGitHub()
    failed = FailedResult(reason=FailureReason.CRASH, detail="the CLI died")
    views, _ = _apply(tmp_path, failed, github)
    ((to, reason, _),) = views.changes
    assert (to, reason) == (TaskState.IN_REVIEW, None)
    assert github.reviews == []
    ((marker, body),) = github.comments
    assert marker == f"<!-- stoneforge:review-not-given-{HEAD[:12]} -->"
    assert "did not review aaaaaaaaaaaa: crash: the CLI died" in body
    assert "waits for a person's approval" in body  # required


def test_the_reviewed_head_and_rounds_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    store = Store(url)
    task = Task(repo="octo/app", number=7, title="t", state=TaskState.IN_REVIEW)
    store.upsert_task(task)
    store.update_task(task.ref, agent_review_head=HEAD, agent_review_rounds=1, reason=REVIEWING)
    store.close()
    again = Store(url)
    try:
        kept = again.get_task(task.ref)
        assert kept is not None
        assert (kept.agent_review_head, kept.agent_review_rounds, kept.reason) == (
            HEAD, 1, REVIEWING,
        )  # fmt: skip
    finally:
        again.close()


class _Reviews:
    """What ``feedback_for`` reads: every review of the pull request, its inline comments, and
    whose reviews count (people with write access: lead)."""

    def __init__(self, reviews: list[Review]) -> None:
        self.all = reviews

    async def reviews(self, installation_id: int, repo: str, number: int) -> list[Review]:
        return self.all

    async def review_comments(self, installation_id: int, repo: str, number: int) -> list[Any]:
        return [ReviewComment(1, 7, APP, "a.py", 3, "here")]

    async def is_writer(self, inst: int, repo: str, login: str, kind: str = "User") -> bool:
        return login == "lead"


APP = "app[bot]"


def test_the_review_agents_change_request_is_the_revisions_feedback_until_it_approves() -> None:
    asked = Review(7, APP, "COMMENTED", verdict_marker("REQUEST_CHANGES") + "\nPage it.", HEAD,
                   "Bot")  # fmt: skip
    drive_by = Review(8, "sam", "CHANGES_REQUESTED", "No.", HEAD)
    github = _Reviews([asked, drive_by])
    feedback, newest = asyncio.run(feedback_for(github, github, 1, "octo/app", 12, answering=7))  # type: ignore[arg-type]
    assert feedback == [f"@{APP}: Page it.", "a.py:3: here"]
    assert newest == 7
    github.all.append(Review(9, APP, "COMMENTED", verdict_marker("APPROVE") + "\nOK.", "b" * 40))
    feedback, _ = asyncio.run(feedback_for(github, github, 1, "octo/app", 12, answering=7))  # type: ignore[arg-type]
    assert feedback == [], "its later approval replaces it"
