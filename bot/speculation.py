"""The speculative merge queue (``merge.mode: speculative``): candidates built, tested, landed.

The steward calls :meth:`Speculation.run` once per pass for a repository in speculative mode,
after executing every action of its serial plan except the merges and the plain branch updates
(a candidate merges the current base anyway). Per base branch, this module reads the base's
tip and the CI on each candidate commit, asks the pure ``bot.core.speculation.plan_speculation``
what to do, and does it through GitHub's REST API (``bot.adapters.github.gitdata``), as bors-ng
does:

- build: a candidate is a merge commit made by GitHub (``POST /merges``) into a scratch branch
  set to the commit the batch builds on (the base's tip or the last candidate kept), so each
  merge lands on the one before; each is then given its own branch
  ``stoneforge/queue/{base}/{n}``, whose push runs CI on it;
- land: the base is moved to the last green candidate's commit with a non-forced ref update (a
  fast-forward: exactly the tested commit lands, and GitHub marks every pull request whose head
  it contains merged). A refused update (the base moved) drops the batch; it is built again;
- eject: a red candidate's pull request goes the red-check path (its check run was re-run once
  first): back to its agent with the candidate's failure (``steward.fix_attempts``), or failed
  quoting it; never merged red;
- clean up: dropped and landed candidates' branches are deleted, and the scratch branch when
  the batch is empty.

The batch is held in memory, one per (repository, base); after a restart it is built again from
the current base (the candidates' branches are overwritten, and nothing lands that this
process did not see tested green on the base it moves).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Coroutine, Mapping, Sequence

from bot.adapters.github import GitHubError, MergeConflict
from bot.core.lifecycle import ChecksFailed, Failed
from bot.core.model import IssueRef, Task, TaskState
from bot.core.speculation import (
    Candidate,
    CandidateCI,
    Entry,
    SpecDecision,
    candidate_ci,
    plan_speculation,
    ready_queue,
)
from bot.core.steward import Gate, PullSnapshot, RerunKey
from bot.metrics import BotMetrics
from bot.ports import QueuePort
from bot.pull_cache import PullCache
from bot.repos import Repos
from bot.signals import Signals
from bot.steward_check import StewardChecks
from bot.views import TaskViews

log = logging.getLogger(__name__)

QUEUE_PREFIX = "stoneforge/queue"  # candidates: stoneforge/queue/{base}/{n}
SCRATCH_PREFIX = "stoneforge/scratch"  # where candidates are merged: stoneforge/scratch/{base}

BatchKey = tuple[str, str]  # (repository, base)


class Speculation:
    """One batch of candidates per (repository, base); see the module docstring."""

    def __init__(
        self,
        github: QueuePort,
        pulls: PullCache,
        repos: Repos,
        views: TaskViews,
        signals: Signals,
        checks: StewardChecks,
        *,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.github = github
        self.pulls = pulls
        self.repos = repos
        self.views = views
        self.signals = signals
        self.checks = checks
        self.metrics = metrics
        self.batches: dict[BatchKey, tuple[Candidate, ...]] = {}
        self._required: dict[BatchKey, tuple[str, ...]] = {}
        # (repository, base) -> (the base tip, pull requests whose merge conflicted on it)
        self._conflicts: dict[BatchKey, tuple[str, set[IssueRef]]] = {}
        self._numbers = itertools.count(int(time.time()) % 1_000_000)
        self._cleanups: set[asyncio.Future[None]] = set()
        self._scratch: dict[BatchKey, str] = {}  # where each scratch branch was left

    async def run(
        self,
        repo: str,
        tasks: Sequence[Task],
        in_review: Mapping[IssueRef, Task],
        pulls: Mapping[IssueRef, PullSnapshot],
        *,
        now: float,
        reruns: Mapping[RerunKey, int],
        fix_attempts: Mapping[str, int],
        gate: Gate | None = None,
    ) -> None:
        """One look at every base of ``repo`` with a queue or a batch (``gate``: the review
        agent's rule, as the serial plan applies it)."""
        queues = {
            key: line
            for key, line in ready_queue(
                tasks, pulls, now=now, reruns=reruns, fix_attempts=fix_attempts, gate=gate
            ).items()
            if key[0] == repo
        }
        keys = sorted(set(queues) | {key for key in self.batches if key[0] == repo})
        inst = next((t.installation_id for t in in_review.values() if t.installation_id), None)
        if inst is None:
            return
        for key in keys:
            line = queues.get(key, ())
            if line:
                self._required[key] = pulls[line[0].task].required
            try:
                await self._base(key, inst, line, in_review, pulls)
            except GitHubError as exc:
                log.warning("speculation_failed %s %s: %s", repo, key[1], exc)
                self.signals.steward_wake.set()

    async def _base(
        self,
        key: BatchKey,
        inst: int,
        line: tuple[Entry, ...],
        in_review: Mapping[IssueRef, Task],
        pulls: Mapping[IssueRef, PullSnapshot],
    ) -> None:
        repo, base = key
        started = time.monotonic()
        batch = self.batches.get(key, ())
        required = self._required.get(key, ())
        base_sha, answers = await asyncio.gather(
            self.github.branch_sha(inst, repo, base),
            asyncio.gather(*(self.github.commit_checks(inst, repo, c.sha) for c in batch)),
        )
        verdicts = {
            c.sha: candidate_ci(found, ids, required)
            for c, (found, ids) in zip(batch, answers, strict=True)
        }
        tip, conflicted = self._conflicts.get(key, (base_sha, set()))
        if tip != base_sha:
            conflicted = set()  # the base moved: worth another try
        k = self.repos.config(repo).merge.speculation
        decision = plan_speculation(
            batch, base_sha, line, verdicts, k=k, exclude=frozenset(conflicted)
        )
        read = time.monotonic()
        for reason in decision.reasons:
            log.info("speculation %s %s: %s", repo, base, reason)
        # Landing and building at once: the new candidates build on the tested commit the base
        # moves to, not on the base's ref, and start CI the sooner. A refused landing (the base
        # moved) discards them with the rest of the batch.
        landing = asyncio.ensure_future(
            self._land(key, inst, decision.land, in_review, pulls) if decision.land else _true()
        )
        try:
            built = await self._build(key, inst, decision, in_review, pulls, conflicted)
        finally:
            landed = await landing
        building = time.monotonic()
        if not landed:
            await self._delete(inst, repo, [c.branch for c in (*batch, *built)])
            self.batches[key] = ()
            self.signals.steward_wake.set()
            return
        self._background(
            self._delete(inst, repo, [c.branch for c in (*decision.land, *decision.drop)])
        )
        later: list[Awaitable[object]] = []  # what no CI waits for: after the builds
        if decision.rerun is not None and decision.rerun_check_id is not None:
            later.append(self.github.rerun_check(inst, repo, decision.rerun_check_id))
        if decision.eject is not None and (task := in_review.get(decision.eject.entry.task)):
            later.append(self._eject(task, decision.eject, decision.eject_check))
        await asyncio.gather(*later)
        landed_on = decision.land[-1].sha if decision.land else base_sha
        self._conflicts[key] = (landed_on, conflicted)
        batch = (*decision.keep, *built)
        self.batches[key] = batch
        if not batch:
            await self._delete(inst, repo, [f"{SCRATCH_PREFIX}/{base}"])
            self._scratch.pop(key, None)
        self._show(key, batch, line, in_review, verdicts)
        if decision.land or decision.build or decision.drop:
            log.info(
                "speculation_pass %s %s read_ms=%d build_ms=%d total_ms=%d landed=%d built=%d",
                repo, base, (read - started) * 1000, (building - read) * 1000,
                (time.monotonic() - started) * 1000, len(decision.land), len(built),
            )  # fmt: skip

    async def _land(
        self,
        key: BatchKey,
        inst: int,
        land: tuple[Candidate, ...],
        in_review: Mapping[IssueRef, Task],
        pulls: Mapping[IssueRef, PullSnapshot],
    ) -> bool:
        """Fast-forward the base to the last green candidate: its pull requests are merged.
        Their head branches are deleted in the background."""
        repo, base = key
        tip = land[-1].sha
        if not await self.github.fast_forward(inst, repo, base, tip):
            log.info("speculation_land_refused %s %s: %s is not a fast-forward", repo, base, tip)
            return False
        log.info("speculation_landed %s %s at %s: %s", repo, base, tip,
                 ",".join(f"#{c.entry.pr}" for c in land))  # fmt: skip
        config = self.repos.config(repo)
        merged: list[Awaitable[object]] = []
        heads: list[str] = []
        for cand in land:
            task = in_review.get(cand.entry.task)
            self.pulls.forget(repo, pull=cand.entry.pr)
            if task is None:
                continue
            self.checks.want(
                task, cand.entry.pr, cand.entry.head_sha, "success",
                f"merged into {base} as tested in {cand.sha[:7]}", ("merged",),
            )  # fmt: skip
            self.views.merging.discard(task.ref)
            if self.metrics:
                self.metrics.merges.inc(outcome="merged")
            merged.append(
                self.views.set_state(
                    task, TaskState.MERGED, merged_at=time.time(), merge_sha=cand.sha
                )
            )
            if (pull := pulls.get(task.ref)) is not None and config.merge.delete_branch:
                heads.append(pull.head_ref)
        await asyncio.gather(*merged)
        self._background(self._delete(inst, repo, heads))
        default = (await self.github.repo(inst, repo)).default_branch
        if base == default:
            self.signals.note_base(repo, inst, tip)
        self.signals.steward_wake.set()
        return True

    async def _eject(self, task: Task, cand: Candidate, check: str) -> None:
        """The red-check path for a pull request whose candidate stayed red: back to its agent
        with the candidate's failure while fix rounds remain, else failed quoting it."""
        inst, pr, head = task.installation_id or 0, cand.entry.pr, cand.entry.head_sha
        what = (
            f"required check {check!r} failed in the merge queue on {cand.sha[:7]}"
            f" (pull request #{pr} merged onto {cand.parent[:7]})"
        )
        try:
            failures = await self.github.check_failures(inst, task.repo, cand.sha, (check,))
        except GitHubError as exc:
            log.warning("check_output_failed %s: %s", task.ref, exc)
            failures = ()
        self.views.merging.discard(task.ref)
        attempts = self.repos.config(task.repo).steward.fix_attempts
        log.info("speculation_ejected %s pr=%s candidate=%s", task.ref, pr, cand.sha)
        if task.fix_rounds < attempts:
            rnd = task.fix_rounds + 1
            why = ChecksFailed(pr, head, rnd, (check,), failures or (what,))
            await self.views.transition(
                task, TaskState.QUEUED, why, worker=None, fix_rounds=rnd,
                attempt=max(0, task.attempt - 1),
            )  # fmt: skip
            return
        if self.metrics:
            self.metrics.merges.inc(outcome="failed")
        quoted = "\n".join(
            f"> {line}" if line else ">" for line in "\n".join(failures).splitlines()
        )
        reason = f"{what}, after {task.fix_rounds} fix round(s)" if attempts else what
        await self.views.transition(
            task, TaskState.FAILED, Failed(f"{reason}:\n\n{quoted}" if quoted else reason, pr)
        )

    async def _build(
        self,
        key: BatchKey,
        inst: int,
        decision: SpecDecision,
        in_review: Mapping[IssueRef, Task],
        pulls: Mapping[IssueRef, PullSnapshot],
        conflicted: set[IssueRef],
    ) -> list[Candidate]:
        """Each new candidate: the scratch branch set to its parent, the head merged into it by
        GitHub, its own branch pointed at the merge (CI runs on it)."""
        repo, base = key
        scratch = f"{SCRATCH_PREFIX}/{base}"
        parent, built = decision.build_on, list[Candidate]()
        if not decision.build:
            return built
        if self._scratch.get(key) != parent:  # else it is there from the last build
            await self.github.set_branch(inst, repo, scratch, parent)
            self._scratch[key] = parent
        pointed: list[Awaitable[None]] = []  # each candidate's branch, set while merging on
        try:
            for entry in decision.build:
                task = in_review.get(entry.task)
                pull = pulls.get(entry.task)
                title = task.title if task else f"#{entry.pr}"
                head_ref = pull.head_ref if pull else entry.head_sha
                message = f"Merge pull request #{entry.pr} from {head_ref}\n\n{title}"
                try:  # the scratch branch moves to the merge: the next one builds on it
                    merged = await self._merge(key, inst, scratch, parent, entry.head_sha, message)
                except MergeConflict:
                    log.info("speculation_conflict %s #%s on %s", repo, entry.pr, parent[:12])
                    conflicted.add(entry.task)  # not tried again until the base moves
                    continue
                sha = merged or parent  # None: the head is in the parent already
                branch = f"{QUEUE_PREFIX}/{base}/{next(self._numbers)}"
                pointed.append(
                    asyncio.ensure_future(self.github.set_branch(inst, repo, branch, sha))
                )
                built.append(Candidate(entry, parent, sha, branch))
                if task is not None:
                    self.views.merging.add(task.ref)
                parent = sha
        finally:
            await asyncio.gather(*pointed)
        return built

    async def _merge(
        self, key: BatchKey, inst: int, scratch: str, parent: str, head: str, message: str
    ) -> str | None:
        """Merge ``head`` into the scratch branch, which must be at ``parent``: a merge GitHub
        made on anything else (someone moved the branch) is made again on ``parent``."""
        repo = key[0]
        for _ in range(2):
            try:
                made = await self.github.merge_into(inst, repo, scratch, head, message)
            except (MergeConflict, GitHubError):
                self._scratch.pop(key, None)  # not known any more
                raise
            if made is None:
                return None
            sha, onto = made
            if onto == parent:
                self._scratch[key] = sha
                return sha
            log.warning("speculation_scratch_moved %s %s: at %s", repo, scratch, onto[:12])
            await self.github.set_branch(inst, repo, scratch, parent)
        raise GitHubError(0, f"{scratch} keeps moving: no candidate built on {parent[:12]}")

    def _background(self, work: Coroutine[object, object, None]) -> None:
        """Clean-up nothing waits for (branches deleted): off the pass, kept until done."""
        task = asyncio.ensure_future(work)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _delete(self, inst: int, repo: str, branches: Sequence[str]) -> None:
        async def one(branch: str) -> None:
            try:
                await self.github.delete_branch(inst, repo, branch)
            except GitHubError as exc:
                log.warning("speculation_delete_failed %s %s: %s", repo, branch, exc)

        await asyncio.gather(*(one(b) for b in branches))

    def _show(
        self,
        key: BatchKey,
        batch: Sequence[Candidate],
        line: Sequence[Entry],
        in_review: Mapping[IssueRef, Task],
        verdicts: Mapping[str, CandidateCI],
    ) -> None:
        """The ``stoneforge`` check on each queued head: tested as which candidate, or how many
        are ahead of it."""
        base = key[1]
        testing = {c.entry.task: (i, c) for i, c in enumerate(batch, start=1)}
        waiting = [e for e in line if e.task not in testing]
        for entry in line:
            task = in_review.get(entry.task)
            if task is None:
                continue
            if entry.task in testing:
                i, cand = testing[entry.task]
                title = (
                    f"in the merge queue: testing as candidate {i} of {len(batch)} on {base}"
                    f" ({cand.sha[:7]})"
                )
                state: tuple[object, ...] = ("speculating", cand.sha)
            else:
                ahead = len(batch) + waiting.index(entry)
                title = f"in the merge queue on {base}: {ahead} ahead of it"
                state = ("queued",)
            self.checks.want(task, entry.pr, entry.head_sha, None, title, state)


async def _true() -> bool:
    return True
