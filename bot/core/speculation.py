"""The speculative merge queue's decisions (``merge.mode: speculative``), as pure functions.

Up to ``k`` ready pull requests at the front of a base branch's queue are tested together, each
on top of the ones ahead of it. A *candidate* is a real merge commit on a branch of its own:
candidate 1 = the base's tip + the first pull request's head, candidate i = candidate i-1 + the
i-th. CI runs on every candidate at once; what lands is exactly a tested candidate commit (the
base is fast-forwarded to it, never forced: the Not Rocket Science Rule, merge-anchors.md
section 1), and GitHub then shows every pull request it contains as merged.

``ready_queue`` says which pull requests are in line, per (repository, base), in dispatch
order: those the serial steward (``bot.core.steward.plan_merges``) would merge or queue behind a
merge, with two differences. Being ``behind`` the base does not matter (a candidate merges the
current base anyway), and a blocker still in review does not hold a pull request back: it only
has to be ahead of it in the same batch (``Entry.after``).

``plan_speculation`` takes the batch being tested, the base's tip, the queue and the CI verdict
on each candidate commit, and decides. The rules, in order:

1. A candidate is valid while its chain holds: the first built on the base's current tip, each
   next on the one ahead, its pull request still in the queue with the same head. The first
   invalid one and every one behind it are dropped (they contain it) and built again.
2. The longest green prefix lands: the base moves to its last candidate's commit.
3. The first candidate after that prefix, when red: a red check run not yet re-run on it is
   re-run once (it may be a flake); otherwise its pull request is ejected (it goes to the
   red-check path: ``steward.fix_attempts`` rounds, then it fails; never merged red), and every
   candidate behind it is dropped: they are tested again without it. Pending: wait; a red
   candidate behind a pending one says nothing yet (its failure may be the one ahead's).
4. The batch is filled up to ``k`` from the queue, in order, skipping the ejected pull request and
   ``exclude`` (those whose merge conflicted with the batch), each admitted once every blocker
   in ``after`` landed or is ahead of it in the batch.

A failure at position i thus costs the pull requests behind it one more CI run, and bisects the
batch as a merge queue with "restart behind on failure" does (GitHub's merge queue, Zuul):
merge-anchors.md section 7.2, ``X_k = (1 - p)(1 - (1 - p)^k) / (p T')``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import (
    GREEN_CONCLUSIONS,
    STEWARD_CHECK,
    Gate,
    PullSnapshot,
    RerunKey,
    WaitFor,
    plan_merges,
)

Verdict = Literal["pending", "green", "red"]


@dataclass(frozen=True)
class Entry:
    """A pull request in line on its base, in dispatch order."""

    task: IssueRef
    pr: int
    head_sha: str
    #: its blockers still in review: each must land before it or be ahead of it in the batch
    after: tuple[IssueRef, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One pull request under test: ``sha`` merges its head into ``parent`` (the base's tip or
    the candidate ahead of it) and is the tip of ``branch``."""

    entry: Entry
    parent: str
    sha: str
    branch: str
    rerun: bool = False  # its red check run was re-run once


@dataclass(frozen=True)
class CandidateCI:
    """CI on a candidate commit: its verdict, the check that decided it (red or still
    pending), and for a red check run its id (a commit status has none: it cannot be re-run)."""

    verdict: Verdict
    check: str = ""
    check_id: int | None = None


PENDING = CandidateCI("pending")


@dataclass(frozen=True)
class SpecDecision:
    land: tuple[Candidate, ...] = ()  # in order; the base moves to the last one's commit
    rerun: Candidate | None = None  # re-run ``rerun_check_id`` on it, once
    rerun_check_id: int | None = None
    eject: Candidate | None = None  # its pull request leaves the queue for the red-check path
    eject_check: str = ""
    keep: tuple[Candidate, ...] = ()  # still under test, behind what lands
    drop: tuple[Candidate, ...] = ()  # no longer valid (the ejected one too): branches deleted
    build: tuple[Entry, ...] = ()  # new candidates, in order, on top of ``build_on``
    build_on: str = ""  # the commit the first new candidate merges into
    reasons: tuple[str, ...] = ()


def candidate_ci(
    checks: Mapping[str, tuple[str, str | None]],
    check_ids: Mapping[str, int],
    required: Sequence[str],
) -> CandidateCI:
    """The verdict over a candidate commit's checks (name -> (status, conclusion); the newest
    run per name). With required checks, those decide (a red one wins over a pending one). With
    none required, every check reported decides, and a commit no check reported on yet is
    pending: a candidate is never green before some CI ran on it."""
    names = [n for n in required if n != STEWARD_CHECK] or [n for n in checks if n != STEWARD_CHECK]
    if not names:
        return PENDING
    pending = ""
    for name in names:
        status, conclusion = checks.get(name, ("missing", None))
        if status != "completed":
            pending = pending or name
        elif conclusion not in GREEN_CONCLUSIONS:
            return CandidateCI("red", name, check_ids.get(name))
    return CandidateCI("pending", pending) if pending else CandidateCI("green")


def ready_queue(
    tasks: Sequence[Task],
    pulls: Mapping[IssueRef, PullSnapshot],
    *,
    now: float,
    reruns: Mapping[RerunKey, int] | None = None,
    fix_attempts: Mapping[str, int] | None = None,
    gate: Gate | None = None,
) -> dict[tuple[str, str], tuple[Entry, ...]]:
    """The pull requests in line, per (repository, base), in dispatch order (see the module's
    docstring): ready by the serial steward's rules (``gate``: the review agent's, passed on)
    once being behind and blockers in review no longer count. A base that requires GitHub's
    own merge queue is left to it (``bot.core.merge_queue``)."""
    in_review = {t.ref for t in tasks if t.state is TaskState.IN_REVIEW}
    relaxed = [
        dataclasses.replace(t, blocked_by=tuple(b for b in t.blocked_by if b not in in_review))
        if t.ref in in_review
        else t
        for t in tasks
    ]
    level = {
        ref: dataclasses.replace(p, mergeable_state="clean")
        if p.mergeable_state == "behind" and p.mergeable is not False
        else p
        for ref, p in pulls.items()
    }
    actions = plan_merges(
        relaxed, level, now=now, reruns=reruns, fix_attempts=fix_attempts, gate=gate
    )
    by_ref = {t.ref: t for t in tasks}
    out: dict[tuple[str, str], list[Entry]] = {}
    for action in actions:
        if not (action.kind == "merge" or action.wait is WaitFor.MERGE_AHEAD):
            continue
        pull, task = pulls[action.task], by_ref[action.task]
        if pull.merge_queue:
            continue
        after = tuple(b for b in task.blocked_by if b in in_review)
        entry = Entry(action.task, pull.number, pull.head_sha, after)
        out.setdefault((action.task.repo, pull.base_ref), []).append(entry)
    return {key: tuple(entries) for key, entries in out.items()}


def plan_speculation(
    batch: Sequence[Candidate],
    base_sha: str,
    queue: Sequence[Entry],
    verdicts: Mapping[str, CandidateCI],
    *,
    k: int,
    exclude: frozenset[IssueRef] = frozenset(),
) -> SpecDecision:
    """What to land, re-run, eject, drop and build for one base (rules in the docstring).

    ``verdicts``: CI per candidate commit (missing: pending). ``exclude``: pull requests not to
    build this time (their merge conflicted with the batch).
    """
    reasons: list[str] = []
    valid = _valid_prefix(batch, base_sha, {e.task: e for e in queue}, reasons)
    drop = list(batch[len(valid) :])
    green = 0
    while green < len(valid) and verdicts.get(valid[green].sha, PENDING).verdict == "green":
        green += 1
    land, rest = tuple(valid[:green]), list(valid[green:])
    if land:
        prs = ", ".join(f"#{c.entry.pr}" for c in land)
        reasons.append(f"candidate {land[-1].sha[:7]} is green: landing {prs}")
    rerun: Candidate | None = None
    rerun_id: int | None = None
    eject: Candidate | None = None
    eject_check = ""
    if rest and (ci := verdicts.get(rest[0].sha, PENDING)).verdict == "red":
        head = rest[0]
        if ci.check_id is not None and not head.rerun:
            rerun, rerun_id = dataclasses.replace(head, rerun=True), ci.check_id
            rest[0] = rerun
            reasons.append(
                f"check {ci.check!r} failed on the candidate of #{head.entry.pr}: re-run once"
            )
        else:
            eject, eject_check = head, ci.check
            drop += rest
            behind = ", ".join(f"#{c.entry.pr}" for c in rest[1:])
            reasons.append(
                f"check {ci.check!r} failed on the candidate of #{head.entry.pr}: taken out"
                + (f"; {behind} tested again without it" if behind else "")
            )
            rest = []
    keep = tuple(rest)
    build_on = keep[-1].sha if keep else (land[-1].sha if land else base_sha)
    build = _fill(queue, land + keep, k - len(keep), exclude | _ejected(eject))
    if build:
        reasons.append("testing " + ", ".join(f"#{e.pr}" for e in build))
    return SpecDecision(
        land=land,
        rerun=rerun,
        rerun_check_id=rerun_id,
        eject=eject,
        eject_check=eject_check,
        keep=keep,
        drop=tuple(drop),
        build=build,
        build_on=build_on,
        reasons=tuple(reasons),
    )


def _valid_prefix(
    batch: Sequence[Candidate],
    base_sha: str,
    queued: Mapping[IssueRef, Entry],
    reasons: list[str],
) -> list[Candidate]:
    valid: list[Candidate] = []
    parent = base_sha
    for cand in batch:
        entry = queued.get(cand.entry.task)
        if cand.parent != parent:
            reasons.append(
                f"the candidate of #{cand.entry.pr} was built on {cand.parent[:7]}, not on"
                f" {parent[:7]}: built again"
            )
            break
        if entry is None or entry.head_sha != cand.entry.head_sha:
            reasons.append(
                f"#{cand.entry.pr} left the queue or its head moved: it and the candidates"
                " behind it are dropped"
            )
            break
        valid.append(cand)
        parent = cand.sha
    return valid


def _ejected(eject: Candidate | None) -> frozenset[IssueRef]:
    return frozenset() if eject is None else frozenset({eject.entry.task})


def _fill(
    queue: Sequence[Entry], batch: Sequence[Candidate], room: int, skip: frozenset[IssueRef]
) -> tuple[Entry, ...]:
    """Up to ``room`` entries behind ``batch``, in queue order, each after its blockers."""
    ahead = {c.entry.task for c in batch}
    chosen: list[Entry] = []
    for entry in queue:
        if len(chosen) >= room:
            break
        if entry.task in ahead or entry.task in skip:
            continue
        if any(b not in ahead for b in entry.after):
            continue
        chosen.append(entry)
        ahead.add(entry.task)
    return tuple(chosen)
