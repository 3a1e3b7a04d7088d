"""The wire protocol between the bot and its runners (and the GitHub Actions job).

This is the one module of the bot that ``runner`` and ``action`` import. Every message that
crosses the HTTP boundary is one of these models; nothing on either side reads a job or a
result as a dict. ``schema/job.schema.json`` is generated from them (``wire_schema()``) and a
test fails when it is stale.

Messages (``docs/architecture.md``, "bot <-> runner protocol"):

- ``ClaimRequest`` -> ``ClaimAnswer`` (``POST /runner/claim``): a ``Job`` or a ``Prefetch``.
- ``Job``: a discriminated union on ``kind``. ``implement`` (a task's agent run), ``revise``
  (the same branch again, with a review's feedback), ``fix_checks`` (the same branch again,
  with the output of required checks that stayed red), ``plan`` (the director: break an epic
  into a plan, ``bot.core.plan``), ``rebase`` (the steward's: rebase a conflicting branch
  onto its base with git, no agent) and ``resolve_conflicts`` (the steward's, after a rebase
  met conflicts: an agent resolves them mid-rebase) and ``review`` (the steward's, before
  merging on a repository with ``review`` configured: an agent reviews the pull request's head
  and writes a verdict, answered by a ``reviewed`` result).
- ``Heartbeat``, ``TranscriptUpload`` and ``JobResult`` are posted to
  ``/runner/jobs/{job_id}/...`` with the job's claim secret in the ``CLAIM_SECRET_HEADER``
  header: a job belongs to the runner that claimed it.
- ``JobResult``: a discriminated union on ``outcome`` (``completed``, ``handoff``,
  ``rate_limited``, ``failed``, ``planned`` for a plan job and ``reviewed`` for a review
  job); each reason is an enum, never free text.

Models the bot receives forbid unknown keys (a typo is a 422 naming the key, not a silent
default); models the runner receives ignore them (a newer bot may add fields). Numbers are
finite and non-negative.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1
#: The header that carries a job's claim secret on heartbeats, transcripts and results.
CLAIM_SECRET_HEADER = "X-Stoneforge-Claim-Secret"

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Received(BaseModel):
    """A message the bot receives from a runner: strict, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Sent(BaseModel):
    """A message the bot sends to a runner: unknown keys ignored (a newer bot may add some)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


# --- claiming -------------------------------------------------------------------------------
class ClaimRequest(_Received):
    runner: str = Field("runner", max_length=100)
    worker: str = Field("w", max_length=200)
    wait_s: Seconds = 0.0
    labels: tuple[Annotated[str, Field(max_length=100)], ...] = Field((), max_length=50)
    capacity: Annotated[int, Field(ge=1, le=1024)] | None = None
    #: agents this runner paused after a rate limit: hand it only jobs for other agents
    unavailable_agents: tuple[Annotated[str, Field(max_length=100)], ...] = Field((), max_length=50)
    #: with no work, the runner may get a ``Prefetch`` instead
    prefetch: bool = False


class Prefetch(_Sent):
    """The default branch of a repository this runner worked on moved: fetch it ahead.

    ``token`` reads that repository only and is revoked a minute later."""

    repo: str
    clone_url: str
    base: str
    base_sha: str
    token: str


# --- jobs -----------------------------------------------------------------------------------
class JobKind(StrEnum):
    IMPLEMENT = "implement"
    REVISE = "revise"
    PLAN = "plan"
    REBASE = "rebase"
    FIX_CHECKS = "fix_checks"
    RESOLVE_CONFLICTS = "resolve_conflicts"
    REVIEW = "review"


class AgentChoice(_Sent):
    name: Name
    model: str | None = None


class Commands(_Sent):
    setup: str | None = None
    test: str | None = None


class Timeouts(_Sent):
    """Seconds; a missing value falls back to the runner's own setting."""

    agent_s: Seconds | None = None
    stall_s: Seconds | None = None
    setup_s: Seconds | None = None
    test_s: Seconds | None = None


class IssueComment(_Sent):
    """A comment by a collaborator with write access (others never reach a prompt)."""

    author: str
    body: str


class LandedWork(_Sent):
    """A merged blocker of a plan's task, as the bot read it from GitHub: what landed."""

    issue: int = Field(ge=1)
    title: str
    pull_number: int | None = None
    #: the pull request's summary (its body's summary part), capped by the bot
    summary: str = ""
    #: the files the pull request changed (capped)
    files: tuple[str, ...] = ()


class PlanContext(_Sent):
    """What a task of a plan is told about the plan (``bot.core.plan``), so agents of one plan
    do not re-discover what the others decided. Written by the bot from GitHub; the prompt
    marks it as data, not instructions."""

    plan_id: str
    epic: int = Field(ge=1)
    epic_title: str
    epic_body: str = ""
    #: the director's decisions (the plan's ``notes``)
    notes: tuple[str, ...] = ()
    #: the task's merged blockers, what each landed
    landed: tuple[LandedWork, ...] = ()


class _JobCommon(_Sent):
    #: never reused: each dispatch gets a new one
    job_id: Name
    #: only the claiming runner receives it; heartbeats, transcripts and results present it
    claim_secret: str = Field(min_length=16)
    repo: str
    issue: int = Field(ge=1)
    title: str
    body: str = ""
    base: str = "main"
    #: the base's tip as the bot knows it: a runner whose mirror has it skips its fetch
    base_sha: str | None = None
    clone_url: str
    #: installation token for this repository only; revoked when the job ends
    token: str
    lease_s: Seconds = 120.0
    agent: AgentChoice
    timeouts: Timeouts = Timeouts()
    #: what the job may still spend (None: no budget)
    budget_usd: Money | None = None
    comments: tuple[IssueComment, ...] = ()


class _JobBase(_JobCommon):
    #: the task's attempt (handoffs count; rate limits and review rounds are refunded)
    attempt: int = Field(1, ge=1)
    max_attempts: int = Field(3, ge=1)
    branch: str
    commands: Commands = Commands()
    #: set for a task of a director's plan
    plan: PlanContext | None = None
    #: notes of earlier attempts' handoffs, oldest first
    handoff_notes: tuple[str, ...] = ()
    #: the task was restarted (relabeled, or its branch conflicts with the base): start from
    #: the base, not from the pushed branch
    restart: bool = False


class ImplementJob(_JobBase):
    """Implement the issue on the task's branch (continuing pushed work unless ``restart``)."""

    kind: Literal[JobKind.IMPLEMENT] = JobKind.IMPLEMENT

    @property
    def continues_branch(self) -> bool:
        return self.attempt > 1 and not self.restart


class ReviseJob(_JobBase):
    """A writer requested changes on the task's pull request: revise the same branch."""

    kind: Literal[JobKind.REVISE] = JobKind.REVISE
    pull_number: int | None = Field(None, ge=1)
    #: ``@login: body`` for each review, then its inline comments as ``path:line: body``
    review_feedback: tuple[str, ...] = Field(min_length=1)
    #: the review round (1 for the first review that sent the task back)
    round: int = Field(1, ge=1)

    @property
    def continues_branch(self) -> bool:
        return not self.restart


class FixChecksJob(_JobBase):
    """The steward's: required checks on the task's pull request stayed red after their
    re-run. Fix the same branch, given each failing check's output, test, and push."""

    kind: Literal[JobKind.FIX_CHECKS] = JobKind.FIX_CHECKS
    pull_number: int | None = Field(None, ge=1)
    #: each red check: ``name: conclusion``, then its output's title, summary and text (capped)
    check_failures: tuple[Annotated[str, Field(max_length=8000)], ...] = Field(
        min_length=1, max_length=20
    )
    #: the fix round (1 for the first), of ``steward.fix_attempts``
    round: int = Field(1, ge=1)

    @property
    def continues_branch(self) -> bool:
        return not self.restart


class PlanJob(_JobCommon):
    """The director: read the repository (a read-only worktree of ``base``) and the epic issue
    (``issue``, ``title``, ``body``, ``comments``), and write a plan (``bot.core.plan``,
    ``schema/plan.schema.json``) to the file the runner names. Nothing is pushed."""

    kind: Literal[JobKind.PLAN] = JobKind.PLAN
    plan_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    #: the maintainer's words after ``/stoneforge plan``
    guidance: str = ""
    #: for a replan: what already landed or runs (kept), so the new plan covers only the rest
    kept: tuple[LandedWork, ...] = ()
    #: a plan job pushes nothing: no branch
    branch: str = ""
    attempt: int = Field(1, ge=1)

    @property
    def continues_branch(self) -> bool:
        return False


Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]


class RebaseJob(_JobCommon):
    """The steward's: the task's pull request conflicts with its base. Rebase ``branch`` onto
    ``origin/<base>`` with git in a worktree (no agent), run the test command, and push with
    ``--force-with-lease=<branch>:<expected_head>``. A conflict is reported as
    ``FailureReason.REBASE_CONFLICT`` (the conflicted files in ``detail``); a branch with a
    commit the App did not make, or one that moved since ``expected_head``, is never rewritten:
    ``FailureReason.BRANCH_MOVED``."""

    kind: Literal[JobKind.REBASE] = JobKind.REBASE
    branch: str = Field(min_length=1)
    #: the head the bot last saw: the lease the push is made against
    expected_head: Sha
    pull_number: int | None = Field(None, ge=1)
    commands: Commands = Commands()
    attempt: int = Field(1, ge=1)

    @property
    def continues_branch(self) -> bool:
        return True


class ResolveConflictsJob(_JobCommon):
    """The steward's, after a rebase job met conflicts: rebase ``branch`` onto
    ``origin/<base>`` again, and at each stop an agent resolves the conflicted files in the
    worktree (its prompt: the files with their markers, the issue, the task's diff, and the
    base's commits that touched them). The runner checks that no conflict marker is left,
    continues the rebase, runs the test command, and pushes with
    ``--force-with-lease=<branch>:<expected_head>``. Not resolved (markers left, the agent
    failed, the tests failed): ``FailureReason.RESOLVE_FAILED`` with the files in ``detail``;
    a branch that moved: ``FailureReason.BRANCH_MOVED``."""

    kind: Literal[JobKind.RESOLVE_CONFLICTS] = JobKind.RESOLVE_CONFLICTS
    branch: str = Field(min_length=1)
    #: the head the bot last saw: the lease the push is made against
    expected_head: Sha
    pull_number: int | None = Field(None, ge=1)
    commands: Commands = Commands()
    attempt: int = Field(1, ge=1)
    #: the files the rebase job found conflicted (the runner finds each stop's own)
    conflicts: tuple[str, ...] = Field((), max_length=500)
    #: the resolution round of this task (1, then 2; after two a fresh agent run)
    round: int = Field(1, ge=1)

    @property
    def continues_branch(self) -> bool:
        return True


class ReviewJob(_JobCommon):
    """The steward's, before it merges a pull request on a repository with ``review``
    configured: check out ``head`` of ``branch`` in a worktree (nothing is pushed), and have
    the review agent (``agent``) read the diff against ``base`` with the issue (``title``,
    ``body``: its acceptance criteria) and write its verdict to the file the runner names
    (``REVIEW_EVENTS``, a body, line comments on the changed files). Answered by a
    ``ReviewedResult``, which the bot posts as a pull request review as the App."""

    kind: Literal[JobKind.REVIEW] = JobKind.REVIEW
    branch: str = Field(min_length=1)
    #: the head to review (the review is posted on it; a branch that moved is not reviewed)
    head: Sha
    pull_number: int = Field(ge=1)
    #: this review's round, of ``max_rounds`` (``review.max_rounds``)
    round: int = Field(1, ge=1)
    max_rounds: int = Field(2, ge=1)
    attempt: int = Field(1, ge=1)

    @property
    def continues_branch(self) -> bool:
        return True


AnyJob = (
    ImplementJob | ReviseJob | FixChecksJob | PlanJob | RebaseJob | ResolveConflictsJob | ReviewJob
)
Job = Annotated[AnyJob, Field(discriminator="kind")]
JOB: TypeAdapter[AnyJob] = TypeAdapter(Job)


class ClaimAnswer(_Sent):
    """``POST /runner/claim`` with work: a job, or a prefetch hint (204: neither)."""

    job: Job | None = None
    prefetch: Prefetch | None = None


# --- while a job runs ----------------------------------------------------------------------
class Heartbeat(_Received):
    """Keeps the job's lease. Answered 200, 403 (not this runner's job) or 409 (stale job)."""


COST_NOTE_MAX = 300


class Usage(_Received):
    input_tokens: Count = 0
    output_tokens: Count = 0
    #: None when the CLI reports no cost
    cost_usd: Money | None = None
    #: set when the runner estimated the cost from tokens and its price table (the CLI reports
    #: none): how, and for a model the table does not know, at which price
    cost_note: str | None = Field(None, max_length=COST_NOTE_MAX)


class TryOutcome(StrEnum):
    """How one agent run (a try) ended, as the runner judged it (tests run after the agent)."""

    COMPLETED = "completed"
    FAILED = "failed"
    HANDOFF = "handoff"
    RATE_LIMITED = "rate_limited"
    #: the bot took the job back while the try ran
    CANCELLED = "cancelled"
    #: the agent's own verdict, when the runner gave none
    HANDOFF_NEEDED = "handoff_needed"


class TranscriptUpload(_Received):
    try_: int = Field(alias="try", ge=1)
    agent: str = Field("", max_length=100)
    outcome: TryOutcome
    reason: str = Field("", max_length=200)
    seconds: Seconds = 0.0
    usage: Usage = Usage()
    #: the try's stdout, then stderr's tail; masked by the runner, capped at 2 MB
    text: str


class TryRecord(_Received):
    """One try of a job's agent, as the result's ``attempt_log`` lists it."""

    try_: int = Field(alias="try", ge=1)
    outcome: TryOutcome
    reason: str = Field("", max_length=200)
    seconds: Seconds = 0.0
    session_id: str | None = None
    resumed: bool = False
    #: what this try spent, not the session's running total
    usage: Usage = Usage()


# --- results -------------------------------------------------------------------------------
class HandoffReason(StrEnum):
    MAX_TURNS = "max_turns"
    BUDGET = "budget"
    PROMPT_TOO_LONG = "prompt_too_long"
    CONTEXT = "context"
    STALLED = "stalled"
    AGENT_REQUESTED = "agent_requested"
    RUNNER_SHUTDOWN = "runner_shutdown"
    #: an adapter's reason this protocol does not name (a ``command`` agent's own words)
    OTHER = "other"


def handoff_reason(text: str) -> HandoffReason:
    """The protocol's reason for an adapter's handoff ``text`` (``OTHER`` for one it does not
    name)."""
    try:
        return HandoffReason(text)
    except ValueError:
        return HandoffReason.OTHER


class FailureReason(StrEnum):
    SETUP_FAILED = "setup_failed"
    NO_CHANGES = "no_changes"
    TESTS_FAILED = "tests_failed"
    GIT_ERROR = "git_error"
    UNKNOWN_AGENT = "unknown_agent"
    TIMEOUT = "timeout"
    STALLED = "stalled"
    CRASH = "crash"
    AUTH = "auth"
    BUDGET = "budget"
    EMPTY_RESULT = "empty_result"
    RESUME_FAILED = "resume_failed"
    SPAWN_FAILED = "spawn_failed"
    SCRIPT_ERROR = "script_error"
    RUNNER_ERROR = "runner_error"
    #: a rebase job met conflicts (the files in ``detail``): an agent has to redo the work
    REBASE_CONFLICT = "rebase_conflict"
    #: a rebase job found the branch not the App's alone, or moved since the bot saw it: it
    #: was not rewritten (``detail`` says which)
    BRANCH_MOVED = "branch_moved"
    #: a resolve_conflicts job's agent did not resolve the conflicts (markers left, the agent
    #: failed, or the tests failed after the rebase): the files in ``detail``
    RESOLVE_FAILED = "resolve_failed"
    #: an adapter's reason this protocol does not name (its words are in ``detail``)
    OTHER = "other"


def failure_reason(text: str) -> FailureReason:
    """The protocol's reason for an adapter's ``text`` (``OTHER`` for one it does not name)."""
    try:
        return FailureReason(text)
    except ValueError:
        return FailureReason.OTHER


class _ResultBase(_Received):
    #: the task's branch ("" for a plan job, which has none)
    branch: str = Field("", max_length=255)
    agent_seconds: Seconds = 0.0
    summary: str | None = Field(None, max_length=100_000)
    #: summed over the tries
    usage: Usage = Usage()
    attempt_log: tuple[TryRecord, ...] = Field((), max_length=100)
    #: what went wrong, in words (an output tail, an adapter's message); None when nothing did
    detail: str | None = Field(None, max_length=100_000)


class CompletedResult(_ResultBase):
    outcome: Literal["completed"] = "completed"
    reason: Literal["success"] = "success"
    head_sha: str = Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class HandoffResult(_ResultBase):
    outcome: Literal["handoff"] = "handoff"
    reason: HandoffReason
    #: the pushed work in progress, or None when there was nothing to push
    head_sha: str | None = Field(None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")
    note: str = Field("", max_length=100_000)


class RateLimitedResult(_ResultBase):
    outcome: Literal["rate_limited"] = "rate_limited"
    reason: str = Field("quota", max_length=200)
    #: epoch seconds; None when the provider did not say
    retry_at: Seconds | None = None
    agent: Name


class FailedResult(_ResultBase):
    outcome: Literal["failed"] = "failed"
    reason: FailureReason


#: a plan file larger than this is refused by the runner (and by the bot's model)
PLAN_MAX_BYTES = 1_000_000


class PlannedResult(_ResultBase):
    """A plan job's agent wrote its plan: the JSON as written (the bot validates it against
    ``bot.core.plan``; the runner already gave the agent one chance to fix its errors)."""

    outcome: Literal["planned"] = "planned"
    reason: Literal["success"] = "success"
    plan: dict[str, Any]
    #: what the runner's own validation still found wrong (empty: it found nothing)
    errors: tuple[Annotated[str, Field(max_length=2_000)], ...] = Field((), max_length=200)


#: a review's verdict: approve, or request changes (GitHub's ``event`` of a review)
REVIEW_EVENTS = ("APPROVE", "REQUEST_CHANGES")
REVIEW_BODY_MAX = 60_000  # GitHub refuses a review body past 65,536 characters
REVIEW_COMMENTS_MAX = 50


class ReviewLine(_Received):
    """A line comment of a review: ``line`` of ``path`` as the head has it (the right side of
    the diff)."""

    path: Annotated[str, Field(min_length=1, max_length=1000)]
    line: int = Field(ge=1)
    body: Annotated[str, Field(min_length=1, max_length=10_000)]


class ReviewedResult(_ResultBase):
    """A review job's agent wrote its verdict on ``head_sha`` (the runner checked it)."""

    outcome: Literal["reviewed"] = "reviewed"
    reason: Literal["success"] = "success"
    head_sha: Sha
    event: Literal["APPROVE", "REQUEST_CHANGES"]
    body: str = Field("", max_length=REVIEW_BODY_MAX)
    comments: tuple[ReviewLine, ...] = Field((), max_length=REVIEW_COMMENTS_MAX)


AnyResult = (
    CompletedResult
    | HandoffResult
    | RateLimitedResult
    | FailedResult
    | PlannedResult
    | ReviewedResult
)
JobResult = Annotated[AnyResult, Field(discriminator="outcome")]
RESULT: TypeAdapter[AnyResult] = TypeAdapter(JobResult)


class ActionsClaim(_Received):
    """``POST /actions/jobs/{job_id}/claim``: the GitHub Actions run collecting its job (the
    bearer token is the job's single-use job token). Answered with the ``Job``."""

    run_id: str | None = Field(None, max_length=40)
    run_attempt: str | None = Field(None, max_length=20)
    repository: str | None = Field(None, max_length=200)


class Registration(_Received):
    """``POST /runner/register`` (no bearer token): a one-time registration token made on the
    bot, traded for the runner's own id and token."""

    registration_token: Annotated[str, Field(min_length=1, max_length=200)]
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    labels: tuple[Annotated[str, Field(max_length=100)], ...] = Field((), max_length=20)
    capacity: Annotated[int, Field(ge=1, le=64)] = 1
    #: the runner's protocol version (``PROTOCOL_VERSION``); the bot answers 422 when it
    #: speaks a newer one than the bot knows
    protocol: Annotated[int, Field(ge=1)] = PROTOCOL_VERSION


class Registered(_Sent):
    runner_id: str
    runner_token: str
    #: the bot's protocol version
    protocol: int = PROTOCOL_VERSION


class Refusal(_Sent):
    """The body of every 4xx answer of the runner API: what was wrong, in words."""

    message: str


def wire_schema() -> dict[str, Any]:
    """The JSON Schema of every message, as ``schema/job.schema.json`` holds it."""
    messages: dict[str, Any] = {
        "ClaimRequest": ClaimRequest,
        "ClaimAnswer": ClaimAnswer,
        "Job": Job,
        "Heartbeat": Heartbeat,
        "TranscriptUpload": TranscriptUpload,
        "JobResult": JobResult,
        "ActionsClaim": ActionsClaim,
        "Registration": Registration,
        "Registered": Registered,
        "Refusal": Refusal,
    }
    definitions: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, model in messages.items():
        schema = TypeAdapter(model).json_schema(ref_template="#/$defs/{model}")
        definitions.update(schema.pop("$defs", {}))
        definitions[name] = schema
        properties[name] = {"$ref": f"#/$defs/{name}"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stoneforge.dev/schema/job.schema.json",
        "title": "Stoneforge bot <-> runner wire protocol",
        "description": f"Protocol version {PROTOCOL_VERSION}; generated from bot/core/protocol.py.",
        "type": "object",
        "properties": properties,
        "$defs": dict(sorted(definitions.items())),
    }
