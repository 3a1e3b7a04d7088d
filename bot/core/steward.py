"""The steward's decisions: what to do with each task's pull request, as a pure function.

``plan_merges`` looks at every task in review and the latest snapshot of its pull request and
returns one ``StewardAction`` per task. The rules, first match wins:

1. no snapshot -> ``wait``
2. pull request merged -> ``mark_merged``; closed without merging -> ``fail``
3. a writer's latest review requests changes and is newer than the one the agent was given
   (``task.review_id``) -> ``revise``: the task goes back to its agent with the feedback
4. a required check completed with a conclusion other than success/neutral/skipped (red):
   on a base it is behind -> ``update_branch`` (test again on the current base); a check run
   not yet re-run on this head -> ``rerun`` (once: it may be a flake); the run that was re-run
   still the newest -> ``wait`` for its re-run; red again after its re-run, or a commit status
   (which cannot be re-run) -> ``fix_checks`` while the task's fix rounds (``task.fix_rounds``)
   are fewer than ``steward.fix_attempts``: the task goes back to its agent on the same branch
   with the red checks' output; after that -> ``fail`` (never merge red)
5. a blocker that is a task has not merged -> ``wait`` (dependency order)
6. a writer's latest review still requests changes (the agent already had it) ->
   ``await_review``: never merged until that reviewer approves or the review is dismissed
7. GitHub has not computed mergeability (``mergeable is None`` or ``unknown``) -> ``wait``
8. ``dirty`` (conflicts) -> ``rebase``: a rebase job (git, no agent) replays the branch onto
   the current base and pushes with a lease on this head; its conflicts send the task back to
   an agent on a fresh base. A branch a rebase job refused to rewrite on this head (a commit
   the App did not make: ``BranchHeld``) -> ``wait`` for its people
9. ``behind`` -> ``update_branch`` guarded by the head SHA
10. a required check missing or not completed -> ``wait``
10a. ``review`` configured: the review agent's part (``bot.core.agent_review``, the ``gate``
   passed in): a review job for this head, a revision its "changes requested" asks for, a
   task failed after its last round, or a wait for a person
11. fewer people approve (their latest verdict) than a branch rule requires -> ``wait``; a
   rule requires code owners' review and a changed file a user owns has no owner's approval
   (``bot.core.codeowners``) -> ``wait``
12. ``clean``, or ``unstable``/``has_hooks`` (required checks are green by now) -> merge candidate;
   anything else (``blocked``: e.g. a review is required; ``draft``) -> ``wait``

Reviews count only from people with write access (and allowed bots); the snapshot leaves out
everyone else's, and the bot's own (its review agent's latest verdict on the head is
``agent_review``, apart). A reviewer's verdict is their latest review that approves,
requests changes or was dismissed; a plain comment review leaves it as it was (as on GitHub).

At most one ``merge`` per (repository, base branch) per plan, because a merge moves the base
and changes every other pull request's state. The candidate is chosen by dispatch order
(effective priority, then issue number); the other candidates wait "queued behind" it.

Branches are brought up to date only at the front of the queue (as Kodiak does): per
(repository, base), only the first pull request in dispatch order that is in line to merge
(``update_branch``, ``merge``, or up to date with its required checks still running) is updated,
and none while a merge on that base is planned. Updating every pull request that is behind would
run CI once per pull request per merge, and all but one of those runs would be stale after the
next merge; merging stays one per CI cycle either way. A front whose required checks have been
pending for ``FRONT_PATIENCE_S`` (``pending_since``, kept by the caller) stops holding the
others back, as a merge queue's check time-out does: a CI that never reports stalls no queue.

Re-runs are the caller's memory (``reruns``: which check run it asked GitHub to run again, per
repository, head and check name, kept durably so a restarted bot never re-runs a check twice on
one head). A re-run check that is green on that head is a flake: ``flaky_checks`` names them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from bot.core.codeowners import OwnerRule, awaiting_owners
from bot.core.graph import analyse
from bot.core.lifecycle import (
    AwaitingReview,
    BranchHeld,
    ChangesRequested,
    ChecksFailed,
    Failed,
    Reason,
    Rebasing,
)
from bot.core.model import IssueRef, Task, TaskState

GREEN_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
MERGEABLE_STATES = frozenset({"clean", "unstable", "has_hooks"})

ActionKind = Literal[
    "merge",
    "update_branch",
    "wait",
    "await_review",
    "redispatch",
    "rebase",
    "revise",
    "fail",
    "mark_merged",
    "rerun",
    "fix_checks",
    "enqueue",  # a base that requires GitHub's merge queue (``bot.core.merge_queue``)
    "review",
]
VERDICT_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})
CHECKS_PENDING = "waiting for required check"  # how a wait for running checks is worded
#: The check run the steward writes on each agent pull request's head (its state and reason);
#: never waited on, even when a branch rule lists it.
STEWARD_CHECK = "stoneforge"


class WaitFor(StrEnum):
    """What a ``wait`` waits for."""

    SNAPSHOT = "snapshot"  # no pull request snapshot yet
    BLOCKERS = "blockers"  # a blocker that is a task has not merged
    MERGEABILITY = "mergeability"  # GitHub is still computing it
    CHECKS = "checks"  # up to date, its required checks still running: in line to merge
    MERGE_AHEAD = "merge_ahead"  # ready, queued behind another merge on its base
    FRONT = "front"  # behind its base; updated when it reaches the front of the queue
    MERGEABLE_STATE = "mergeable_state"  # not mergeable yet (blocked, draft, ...)
    RERUN = "rerun"  # a red required check was re-run; its new run has not reported yet
    APPROVALS = "approvals"  # a branch rule requires more approving reviews
    HELD = "held"  # conflicts, on a branch with commits the App did not make: not rewritten
    CODE_OWNERS = "code_owners"  # a changed file waits for its code owner's approval
    QUEUED = "queued"  # in GitHub's merge queue (``bot.core.merge_queue``)
    DEQUEUED = "dequeued"  # taken out of GitHub's merge queue, not by a red group
    AGENT_REVIEW = "agent_review"  # the review agent's revision, or a person's approval


FIX_ATTEMPTS = 2  # ``steward.fix_attempts`` by default
FAILURE_CAP = 4000  # characters of one check's output an agent (or a failure) is given

FRONT_PATIENCE_S = 30 * 60  # a front waiting this long for its checks lets the next one update

#: (repository, head SHA, check name) -> the id of the check run the caller asked to re-run
RerunKey = tuple[str, str, str]


@dataclass(frozen=True)
class Review:
    """One submitted pull request review; ``state`` in the REST spelling (``APPROVED``,
    ``CHANGES_REQUESTED``, ``COMMENTED``, ``DISMISSED``)."""

    id: int
    author: str
    state: str
    body: str = ""
    commit_id: str | None = None
    author_type: str = "User"  # "User" | "Bot"


@dataclass(frozen=True)
class ReviewComment:
    """An inline review comment; ``line`` is None when it is anchored by diff position only."""

    id: int
    review_id: int | None
    author: str
    path: str
    line: int | None
    body: str


@dataclass(frozen=True)
class PullSnapshot:
    number: int
    state: str  # "open" | "closed"
    merged: bool
    head_sha: str
    head_ref: str
    base_ref: str
    mergeable: bool | None
    mergeable_state: str  # clean, dirty, behind, blocked, unstable, unknown, has_hooks, draft
    # check run name or status context -> (status, conclusion), e.g. ("completed", "success")
    checks: Mapping[str, tuple[str, str | None]]
    # required check names on the base branch (branch protection + repository config)
    required: tuple[str, ...] = ()
    merge_sha: str | None = None  # set once merged: the commit the merge made on the base
    reviews: tuple[Review, ...] = ()  # by writers only, oldest first
    # check run name -> id of its newest run on the head (commit statuses have none)
    check_ids: Mapping[str, int] = field(default_factory=dict)
    # approving reviews a ruleset's ``pull_request`` rule requires on the base branch
    required_approvals: int = 0
    merge_queue: bool = False  # the base requires GitHub's merge queue (a ruleset's rule)
    #: the base's CODEOWNERS rules when a branch rule requires code owners' review, else None
    code_owners: tuple[OwnerRule, ...] | None = None
    files: tuple[str, ...] = ()  # the changed paths (read only when ``code_owners`` is set)
    #: the App's own latest verdict (its review agent's) on ``head_sha``; None: none
    agent_review: Review | None = None


@dataclass(frozen=True)
class StewardAction:
    kind: ActionKind
    task: IssueRef
    pr: int | None
    sha: str | None = None
    reason: str = ""  # in words, for the log
    review_id: int | None = None  # ``revise``: the review the agent is given
    #: ``revise``, ``redispatch``, ``await_review``, ``fail``: the task's typed reason
    why: Reason | None = None
    wait: WaitFor | None = None  # ``wait``: what for
    #: ``rerun``, ``fail`` for a red check, and a ``wait`` for ``CHECKS``/``RERUN``: the check
    check: str | None = None
    blockers: tuple[IssueRef, ...] = ()  # a ``wait`` for ``BLOCKERS``: those not merged yet
    check_id: int | None = None  # ``rerun``: the check run to run again


def check_verdict(pull: PullSnapshot) -> tuple[str, str]:
    """``("red", name)``, ``("pending", name)`` or ``("green", "")`` over the required checks.

    A red check wins over a pending one: the pull request can never become mergeable.
    """
    pending = ""
    for name in pull.required:
        if name == STEWARD_CHECK:
            continue
        status, conclusion = pull.checks.get(name, ("missing", None))
        if status != "completed":
            pending = pending or name
        elif conclusion not in GREEN_CONCLUSIONS:
            return "red", name
    return ("pending", pending) if pending else ("green", "")


def red_checks(pull: PullSnapshot) -> tuple[str, ...]:
    """The required checks that completed red, in the order they are required."""
    return tuple(
        name
        for name in pull.required
        if name != STEWARD_CHECK
        and pull.checks.get(name, ("missing", None))[0] == "completed"
        and pull.checks[name][1] not in GREEN_CONCLUSIONS
    )


def failure_text(
    name: str, conclusion: str | None, title: str = "", summary: str = "", text: str = ""
) -> str:
    """One red check as an agent (or a person) is given it: its name and conclusion, then its
    output's title, summary and text, the text cut to its last ``FAILURE_CAP`` characters (a
    test run's failures are at its end)."""
    head = f"{name}: {conclusion or 'no conclusion'}"
    parts = [head] + [p.strip() for p in (title, summary) if p.strip() and p.strip() != name]
    body = "\n".join(parts)
    room = max(0, FAILURE_CAP - len(body) - 1)
    text = text.strip()
    if len(text) > room:
        text = "..." + text[len(text) - room + 3 :] if room > 3 else ""
    return f"{body}\n{text}" if text else body


def check_words(action: StewardAction) -> tuple[str | None, str]:
    """The ``STEWARD_CHECK`` run for an action: its conclusion (None: still in progress) and
    its title, the steward's state and reason in words. A merge the steward makes is reported
    by the caller once GitHub accepted it."""
    match action.kind:
        case "mark_merged":
            return "success", action.reason
        case "fail":
            return "failure", action.reason
        case "merge":
            return None, f"merging: {action.reason}"
        case "enqueue":
            return None, f"adding it to GitHub's merge queue: {action.reason}"
        case "update_branch":
            return None, f"updating the branch: {action.reason}"
        case "review":
            return None, action.reason
        case "revise" | "redispatch" | "fix_checks":
            return None, f"{action.reason}; back to an agent"
        case "rebase":
            base = action.why.base if isinstance(action.why, Rebasing) else "its base"
            return None, f"{action.reason}; rebasing onto {base}"
        case _:
            return None, action.reason


def check_state(action: StewardAction) -> tuple[object, ...]:
    """What the ``STEWARD_CHECK`` run shows in substance for ``action``: its kind, what it
    waits for, which check, and its typed reason; not its words, which change with every merge
    ahead of it (a queue position). The run is rewritten only when this changes."""
    why = type(action.why).__name__ if action.why is not None else None
    return (action.kind, action.wait, action.check, why)


def blocking_reviews(reviews: Sequence[Review]) -> tuple[Review, ...]:
    """The reviews whose author's verdict is "changes requested", oldest first."""
    verdicts: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: r.id):
        if review.state in VERDICT_STATES:
            verdicts[review.author.lower()] = review
    found = (r for r in verdicts.values() if r.state == "CHANGES_REQUESTED")
    return tuple(sorted(found, key=lambda r: r.id))


def approving_people(reviews: Sequence[Review]) -> int:
    """How many people (not Apps: GitHub never counts an App's approval toward required
    reviews) have "approved" as their verdict."""
    return len(approvers(reviews))


def approvers(reviews: Sequence[Review]) -> frozenset[str]:
    """The people (lower-case logins, no Apps) whose verdict is "approved"."""
    verdicts: dict[str, str] = {}
    for review in sorted(reviews, key=lambda r: r.id):
        if review.state in VERDICT_STATES and review.author_type == "User":
            verdicts[review.author.lower()] = review.state
    return frozenset(who for who, state in verdicts.items() if state == "APPROVED")


def review_feedback(reviews: Sequence[Review], comments: Sequence[ReviewComment]) -> list[str]:
    """The job's ``review_feedback``: each blocking review's body, prefixed by its author,
    followed by its inline comments as ``path:line: body``; oldest review first."""
    out: list[str] = []
    for review in blocking_reviews(reviews):
        body = review.body.strip()
        out.append(f"@{review.author}: {body}" if body else f"@{review.author} requested changes.")
        for comment in sorted(comments, key=lambda c: c.id):
            if comment.review_id == review.id and comment.body.strip():
                where = comment.path if comment.line is None else f"{comment.path}:{comment.line}"
                out.append(f"{where}: {comment.body.strip()}")
    return out


#: rule 10a: what holds a pull request that would otherwise merge (None: nothing)
Gate = Callable[[Task, PullSnapshot], StewardAction | None]


def plan_merges(
    tasks: Sequence[Task],
    pulls: Mapping[IssueRef, PullSnapshot],
    *,
    now: float,
    pending_since: Mapping[IssueRef, float] | None = None,
    reruns: Mapping[RerunKey, int] | None = None,
    fix_attempts: Mapping[str, int] | None = None,
    gate: Gate | None = None,
) -> tuple[StewardAction, ...]:
    """One action per task in review, in dispatch order.

    ``pending_since``: when the steward first saw each pull request's current head with its
    required checks pending (see ``FRONT_PATIENCE_S``). ``reruns``: the check runs already
    re-run (rule 4). ``fix_attempts``: ``steward.fix_attempts`` per repository (default
    ``FIX_ATTEMPTS``). ``gate``: rule 10a (``bot.core.agent_review``).
    """
    fixes = fix_attempts or {}
    since = pending_since or {}
    rerun = reruns or {}
    by_ref = {task.ref: task for task in tasks}
    report = analyse(tasks, {})
    in_review = sorted(
        (t for t in by_ref.values() if t.state is TaskState.IN_REVIEW),
        key=lambda t: (report.priority.get(t.ref, t.priority), t.number, t.repo),
    )
    decided = [(task, pulls.get(task.ref)) for task in in_review]
    merging: dict[tuple[str, str], StewardAction] = {}  # (repo, base) -> the one merge
    front: dict[tuple[str, str], StewardAction] = {}  # (repo, base) -> first in line
    actions: list[StewardAction] = []
    for task, pull in decided:
        action = _decide(task, pull, by_ref, rerun, fixes.get(task.repo, FIX_ATTEMPTS), gate)
        if action.kind == "merge" and pull is not None:
            key = (task.repo, pull.base_ref)
            first = merging.get(key)
            if first is None:
                merging[key] = action
            else:
                action = _wait(
                    task,
                    pull,
                    WaitFor.MERGE_AHEAD,
                    f"ready to merge; queued behind pull request #{first.pr}"
                    f" ({first.task}) on {pull.base_ref}",
                )
        actions.append(action)
    for index, ((task, pull), action) in enumerate(zip(decided, actions, strict=True)):
        if pull is None or not _in_line(action):
            continue
        if action.kind == "wait" and now - since.get(task.ref, now) >= FRONT_PATIENCE_S:
            continue  # its checks never came: it no longer holds the queue
        key = (task.repo, pull.base_ref)
        ahead = merging.get(key) or front.get(key)
        front.setdefault(key, action)
        if action.kind == "update_branch" and ahead is not None:
            actions[index] = _wait(
                task,
                pull,
                WaitFor.FRONT,
                f"behind {pull.base_ref}; updated when it reaches the front of the queue"
                f" (now pull request #{ahead.pr}, {ahead.task})",
            )
    return tuple(actions)


def _in_line(action: StewardAction) -> bool:
    """Whether the pull request is in line to merge: being merged or updated now, or up to
    date and only waiting for its required checks (``_decide`` says so only after the
    ``behind`` rule), which a merge ahead of it would make stale again."""
    return action.kind in ("merge", "update_branch") or (
        action.kind == "wait" and action.wait is WaitFor.CHECKS
    )


def flaky_checks(repo: str, pull: PullSnapshot, reruns: Mapping[RerunKey, int]) -> tuple[str, ...]:
    """The checks that were re-run on the pull request's head after failing and are green now
    (a newer run than the one re-run): flakes, in name order."""
    found = []
    for (where, sha, name), rerun_id in reruns.items():
        if where != repo or sha != pull.head_sha:
            continue
        status, conclusion = pull.checks.get(name, ("missing", None))
        newer = pull.check_ids.get(name, rerun_id) != rerun_id
        if newer and status == "completed" and conclusion in GREEN_CONCLUSIONS:
            found.append(name)
    return tuple(sorted(found))


def _decide(
    task: Task,
    pull: PullSnapshot | None,
    by_ref: Mapping[IssueRef, Task],
    reruns: Mapping[RerunKey, int],
    fix_attempts: int = FIX_ATTEMPTS,
    gate: Gate | None = None,
) -> StewardAction:
    ref = task.ref
    if pull is None:
        return StewardAction(
            "wait",
            ref,
            task.pr_number,
            reason="no pull request snapshot yet",
            wait=WaitFor.SNAPSHOT,
        )
    pr, sha = pull.number, pull.head_sha
    if pull.merged:
        return StewardAction("mark_merged", ref, pr, sha, f"pull request #{pr} was merged")
    if pull.state != "open":
        why = "pull request closed without merging"
        return StewardAction("fail", ref, pr, sha, why, why=Failed(why, pr))
    blocking = blocking_reviews(pull.reviews)
    if blocking and (task.review_id is None or blocking[-1].id > task.review_id):
        newest = blocking[-1]
        return StewardAction(
            "revise",
            ref,
            pr,
            sha,
            f"changes requested by @{newest.author}",
            review_id=newest.id,
            why=ChangesRequested(newest.author, newest.id),
        )
    verdict, check = check_verdict(pull)
    if verdict == "red":
        _, conclusion = pull.checks[check]
        if pull.mergeable_state == "behind" and pull.mergeable is not False:
            # Red on an outdated base proves little: test it again on the current base first
            # (it is still never merged red; red while up to date fails the task).
            return StewardAction(
                "update_branch",
                ref,
                pr,
                sha,
                f"required check {check!r} concluded {conclusion or 'without result'} on an "
                f"outdated base; testing again on the current {pull.base_ref}",
            )
        outcome = conclusion or "without result"
        check_id = pull.check_ids.get(check)
        rerun_id = reruns.get((task.repo, sha, check))
        if check_id is not None and rerun_id is None:
            return StewardAction(
                "rerun",
                ref,
                pr,
                sha,
                f"required check {check!r} concluded {outcome}; running it again once",
                check=check,
                check_id=check_id,
            )
        if check_id is not None and check_id == rerun_id:
            return _wait(
                task,
                pull,
                WaitFor.RERUN,
                f"required check {check!r} failed; waiting for its re-run",
                check=check,
            )
        if rerun_id is not None:
            why = f"required check {check!r} concluded {outcome} twice (again after its re-run)"
        else:
            why = f"required check {check!r} concluded {outcome}"
        if task.fix_rounds < fix_attempts:
            rnd = task.fix_rounds + 1
            return StewardAction(
                "fix_checks",
                ref,
                pr,
                sha,
                f"{why}; fix round {rnd} of {fix_attempts}",
                check=check,
                why=ChecksFailed(pr, sha, rnd, red_checks(pull)),
            )
        if fix_attempts:
            why = f"{why}, after {task.fix_rounds} fix round(s)"
        return StewardAction("fail", ref, pr, sha, why, why=Failed(why, pr), check=check)
    blockers = [
        b for b in task.blocked_by if b in by_ref and by_ref[b].state is not TaskState.MERGED
    ]
    if blockers:
        names = ", ".join(str(b) for b in blockers)
        return _wait(
            task,
            pull,
            WaitFor.BLOCKERS,
            f"waiting for blocker(s) to merge first: {names}",
            blockers=tuple(blockers),
        )
    if blocking:
        who = ", ".join(f"@{r.author}" for r in blocking)
        on_head = any(r.commit_id == sha for r in blocking)
        if on_head:
            words = f"changes requested by {who} on the current head"
        else:
            words = f"waiting for a re-review from {who}"
        awaiting = AwaitingReview(tuple(r.author for r in blocking), on_head)
        return StewardAction("await_review", ref, pr, sha, words, why=awaiting)
    state = pull.mergeable_state
    if pull.mergeable is None or state == "unknown":
        return _wait(task, pull, WaitFor.MERGEABILITY, "GitHub is still computing mergeability")
    if state == "dirty" or pull.mergeable is False:
        held = task.reason
        if isinstance(held, BranchHeld) and held.head == sha:
            return _wait(
                task,
                pull,
                WaitFor.HELD,
                f"pull request #{pr} conflicts with {pull.base_ref}, and its branch has commits"
                " the App did not make: not rewritten; resolve the conflicts on the branch",
            )
        return StewardAction(
            "rebase",
            ref,
            pr,
            sha,
            f"pull request #{pr} conflicts with {pull.base_ref}",
            why=Rebasing(pr, pull.base_ref, sha),
        )
    if state == "behind":
        return StewardAction(
            "update_branch", ref, pr, sha, f"pull request #{pr} is behind {pull.base_ref}"
        )
    if verdict == "pending":
        return _wait(task, pull, WaitFor.CHECKS, f"{CHECKS_PENDING} {check!r}", check=check)
    if gate is not None and (gated := gate(task, pull)) is not None:
        return gated
    approvals = approving_people(pull.reviews)
    if approvals < pull.required_approvals:
        return _wait(
            task,
            pull,
            WaitFor.APPROVALS,
            f"waiting for approving reviews: {approvals} of {pull.required_approvals}",
        )
    if pull.code_owners is not None:
        waiting = awaiting_owners(pull.code_owners, pull.files, approvers(pull.reviews))
        if waiting:
            path, owners = waiting[0]
            more = f" and {len(waiting) - 1} more file(s)" if len(waiting) > 1 else ""
            who = " or ".join(f"@{o}" for o in owners)
            return _wait(
                task,
                pull,
                WaitFor.CODE_OWNERS,
                f"waiting for a code owner's approval: {path}{more} ({who})",
            )
    if state in MERGEABLE_STATES:
        return StewardAction("merge", ref, pr, sha, f"required checks green and state {state}")
    return _wait(task, pull, WaitFor.MERGEABLE_STATE, f"not mergeable yet (state {state})")


def _wait(
    task: Task,
    pull: PullSnapshot,
    wait: WaitFor,
    reason: str,
    *,
    check: str | None = None,
    blockers: tuple[IssueRef, ...] = (),
) -> StewardAction:
    return StewardAction(
        "wait",
        task.ref,
        pull.number,
        pull.head_sha,
        reason,
        wait=wait,
        check=check,
        blockers=blockers,
    )
