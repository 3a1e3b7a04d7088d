"""The steward: merges agent pull requests in dependency order, never red, never out of order.

One pass per repository: read a fresh snapshot of every pull request in review, ask the pure
``bot.core.steward.plan_merges`` what to do, and do it. The pass runs when a pull request,
check or status event arrives and on a timer, so a lost webhook only delays a merge. Across
bot replicas one writer per repository holds the store's steward lock (an advisory lock on
PostgreSQL). A webhook reaches one replica; the one holding the lock catches up on the others'
deliveries from the shared store before each pass (``_catch_up``), so its remembered pull
requests (``bot.pull_cache``) do not outlive what another replica heard.

State machine per task (``docs/architecture.md``):
in_review -> (update branch -> checks)* -> merged; a writer's "changes requested" review sends
the task back to queued (its agent gets the feedback and pushes to the same pull request), and
the pull request is not merged until that reviewer approves or the review is dismissed. A pull
request that conflicts with its base is rebased by a rebase job (``bot.dispatch``), whose
conflicts send the task back to an agent on a fresh base (``bot.results``). A red
required check is re-run once per head (``check_reruns`` in the store); one that passes on its
re-run is recorded as flaky on the pull request and in ``/metrics``. One still red after it goes
back to the agent with the check's output (a fix_checks job on the same branch), at most
``steward.fix_attempts`` rounds (``fix_rounds`` on the task); then the task fails quoting it.
With ``review`` configured (``bot.core.agent_review``), a head that could otherwise merge is
first reviewed by an agent: the task goes to a review job (``Reviewing``; the head is kept on the
task, ``agent_review_head``, so it is never reviewed twice), whose verdict the bot posts as the
App's pull request review (``bot.review_results``); the review agent's "changes requested" go
back to the task's agent as a person's do, counted on the task (``agent_review_rounds``).
Nothing waits silently: a pull request waiting for the same thing past
``steward.wait_timeout_minutes`` is told once what it waits for (``steward_waits`` in the store).
A base that requires GitHub's merge queue gets the same gate, then an enqueue instead of a merge
(``bot.core.merge_queue``; what the queue said is kept in ``bot.merge_queue``); the queue
lands it, and a red merge group goes back to the agent like a red check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

from bot.adapters.github import GitHubError
from bot.core.agent_review import ReviewPolicy, agent_verdict, decide_agent_review
from bot.core.lifecycle import Failed
from bot.core.merge_queue import plan_queue
from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import (
    Gate,
    PullSnapshot,
    StewardAction,
    WaitFor,
    check_state,
    check_verdict,
    check_words,
)
from bot.events import parse_event
from bot.merge_queue import QueueSteward
from bot.metrics import BotMetrics
from bot.ports import QueuePort, StewardStore
from bot.pull_cache import NOTED_EVENTS, PullCache
from bot.red_checks import RedChecks
from bot.repos import Repos
from bot.signals import Identity, Signals
from bot.speculation import Speculation
from bot.stacks import Stacks
from bot.steward_check import StewardChecks
from bot.views import TaskViews
from bot.wait_notices import WaitNotices
from bot.writer_reviews import Writers, writer_reviews

log = logging.getLogger(__name__)

#: the deliveries caught up with from other replicas: the pull cache's, and the merge queue's
CAUGHT_UP_EVENTS = (*NOTED_EVENTS, "merge_group")

#: How far another replica's clock may lag ours and its deliveries still be caught up with
#: (beyond it, a snapshot lives until ``steward_refresh_s``).
CLOCK_SKEW_S = 5.0
CATCH_UP_EVERY_S = 1.0
READS_AT_ONCE = 8  # pull request snapshots read at once in a pass (each a few calls)


class Steward:
    def __init__(
        self,
        github: QueuePort,
        store: StewardStore,
        pulls: PullCache,
        repos: Repos,
        views: TaskViews,
        signals: Signals,
        writers: Writers,
        *,
        interval_s: float,
        metrics: BotMetrics | None = None,
        identity: Identity | None = None,
    ) -> None:
        self.github = github
        self.identity = identity or Identity()  # the App's login: its review agent's reviews
        self.store = store
        self.pulls = pulls
        self.repos = repos
        self.views = views
        self.signals = signals
        self.writers = writers
        self.interval_s = interval_s
        self.metrics = metrics
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._updated: dict[tuple[str, int], str] = {}  # (repo, pr) -> head sha we asked to update
        # (task, head sha) -> when its required checks were first seen pending
        self._pending: dict[tuple[IssueRef, str], float] = {}
        self._caught_up = time.time()  # deliveries processed before this are not looked at
        # (repo, pr) -> (head sha, run id, conclusion, title) of the last ``stoneforge`` check
        self.checks = StewardChecks(github)  # the ``stoneforge`` check on each head
        self.queue = QueueSteward(github, pulls, repos, views, signals, metrics)
        self.stacks = Stacks(github, pulls, views)  # stacked pull requests (bot.stacks)
        # merge.mode speculative: the merge queue's candidates (bot.speculation)
        self.speculation = Speculation(
            github, pulls, repos, views, signals, self.checks, metrics=metrics
        )
        self._caught_up_at = 0.0  # monotonic time of the last look
        # red required checks: re-run once, flakes recorded, fix rounds (bot.red_checks)
        self.red = RedChecks(github, store, pulls, views, signals, metrics)
        self.waits = WaitNotices(github, store, repos)  # nothing waits silently

    async def run_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # (not wait_for: see Dispatcher.claim)
                async with asyncio.timeout(self.interval_s):
                    await self.signals.steward_wake.wait()
            self.signals.steward_wake.clear()
            try:
                await self.pass_all()
            except Exception:  # noqa: BLE001 - the steward must outlive any one failure
                log.exception("steward_pass_failed")

    async def pass_all(self) -> None:
        await self._catch_up()
        tasks = await asyncio.to_thread(self.store.list_tasks, states=[TaskState.IN_REVIEW])
        for repo in sorted({t.repo for t in tasks}):
            await self.pass_repo(repo)

    async def pass_repo(self, repo: str) -> None:
        async with self._locks[repo]:
            info_base = "main"
            try:
                first = next(t for t in await self._in_review(repo))
                info_base = (
                    await self.github.repo(first.installation_id or 0, repo)
                ).default_branch
            except (StopIteration, GitHubError):
                pass
            lock = self.store.steward_lock(repo, info_base)
            held = await asyncio.to_thread(lock.__enter__)
            try:
                if held:
                    await self._pass(repo)
            finally:
                await asyncio.to_thread(lock.__exit__, None, None, None)

    async def _catch_up(self) -> None:
        """Note the pull request events other bot replicas processed (at most once a second;
        this replica's own deliveries were noted as they came in)."""
        now = time.monotonic()
        if now - self._caught_up_at < CATCH_UP_EVERY_S:
            return
        self._caught_up_at = now
        store, pulls = self.store, self.pulls
        rows = await asyncio.to_thread(
            store.processed_since, self._caught_up - CLOCK_SKEW_S, CAUGHT_UP_EVENTS
        )
        unseen = [(guid, event) for guid, event, _ in rows if not pulls.seen(guid)]
        if unseen:
            bodies = await asyncio.to_thread(store.delivery_payloads, [g for g, _ in unseen])
            for guid, event in unseen:
                try:
                    payload = json.loads(bodies.get(guid, b""))
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    pulls.note(event, payload, guid)
                    self.signals.queue.note(parse_event(event, payload))
        if rows:
            self._caught_up = max(self._caught_up, rows[-1][2])

    async def _in_review(self, repo: str) -> list[Task]:
        tasks = await asyncio.to_thread(
            functools.partial(self.store.list_tasks, repo=repo, states=[TaskState.IN_REVIEW])
        )
        return [t for t in tasks if t.pr_number and t.installation_id]

    async def _pass(self, repo: str) -> None:
        started = time.monotonic()
        tasks = (await self.views.working_set()).tasks  # blockers may be in other repos
        if await self.stacks.send_back(repo, tasks):
            tasks = (await self.views.working_set()).tasks
        pulls: dict[IssueRef, PullSnapshot] = {}
        fresh: set[IssueRef] = set()  # read in this pass; the rest come from bot.pulls
        in_review = {t.ref: t for t in await self._in_review(repo)}
        unread: list[Task] = []
        for task in in_review.values():
            cached = self.pulls.get(repo, task.pr_number or 0)
            if cached is not None and cached.head_sha == task.head_sha:
                pulls[task.ref] = cached  # nothing said it changed (a runner's push does)
            else:
                unread.append(task)
        for task, pull in zip(unread, await self._read_all(unread), strict=True):
            if pull is not None:
                pulls[task.ref] = pull
                fresh.add(task.ref)
        now = time.time()
        pending = {
            (ref, pull.head_sha): self._pending.get((ref, pull.head_sha), now)
            for ref, pull in pulls.items()
            if check_verdict(pull)[0] == "pending"
        }
        self._pending = {k: v for k, v in self._pending.items() if k[0].repo != repo} | pending
        since = {ref: at for (ref, _), at in pending.items()}
        heads = {pull.head_sha for pull in pulls.values()}
        reruns = await asyncio.to_thread(self.store.reruns, repo, heads)
        if reruns:
            await self.red.record_flakes(repo, in_review, pulls, reruns)
        fixes = {t.repo: self.repos.config(t.repo).steward.fix_attempts for t in tasks}
        notes = await self.queue.notes(in_review, pulls)
        gate = self._review_gate(repo)
        bases = await self._bases(repo, in_review.values())
        speculative = self.repos.config(repo).merge.mode == "speculative"
        for _ in range(3):
            actions = plan_queue(
                tasks,
                pulls,
                notes,
                now=now,
                pending_since=since,
                reruns=reruns,
                fix_attempts=fixes,
                gate=gate,
                bases=bases,
            )
            # Waiting may rest on a remembered snapshot; doing anything else needs a fresh one
            # (what the merge queue does instead rests on the candidates' own CI).
            stale = {
                a.task
                for a in actions
                if a.kind != "wait"
                and _cached(a, pulls, fresh)
                and not (speculative and _queued(a, pulls.get(a.task)))
            }
            if not stale:
                break
            again = [in_review[ref] for ref in stale]
            for task, pull in zip(again, await self._read_all(again), strict=True):
                if pull is None:
                    pulls.pop(task.ref)
                else:
                    pulls[task.ref] = pull
                    fresh.add(task.ref)
        if speculative:  # first: landing and building start CI; the rest can wait
            log.debug("speculation_due %s after %d ms", repo, (time.monotonic() - started) * 1000)
            await self.speculation.run(
                repo, tasks, in_review, pulls, now=now, reruns=reruns, fix_attempts=fixes, gate=gate
            )
        for action in actions:
            if speculative and _queued(action, pulls.get(action.task)):
                continue  # the merge queue's (bot.speculation)
            if action.kind != "wait" and _cached(action, pulls, fresh):
                self.signals.steward_wake.set()  # still moving after three looks: next pass
                continue
            if (held := in_review.get(action.task)) is not None and action.pr and action.sha:
                conclusion, title = check_words(action)
                await self._report(
                    held, action.pr, action.sha, conclusion, title, check_state(action)
                )
            await self._execute(action, pulls.get(action.task))
        await self.waits.tell(repo, in_review, actions, now)
        live = {t.pr_number for t in in_review.values()}
        self.checks.forget(repo, live)

    def _review_gate(self, repo: str) -> Gate | None:
        """Rule 10a of the steward for ``repo`` (``bot.core.agent_review``); None without
        ``review`` in its configuration."""
        review = self.repos.config(repo).review
        if review is None:
            return None
        policy = ReviewPolicy(required=review.required, max_rounds=review.max_rounds)
        return lambda task, pull: decide_agent_review(task, pull, policy)

    async def _bases(self, repo: str, tasks: Iterable[Task]) -> dict[str, str]:
        """``repo``'s base branch, for the steward's rule 2 (empty when unknown)."""
        for task in tasks:
            try:
                info = await self.github.repo(task.installation_id or 0, repo)
            except GitHubError:
                return {}
            return {repo: info.default_branch}
        return {}

    async def _report(
        self,
        task: Task,
        pr: int,
        sha: str,
        conclusion: str | None,
        title: str,
        state: tuple[object, ...],
    ) -> None:
        """Show the steward's state on the pull request's head (``bot.steward_check``: written
        in the background, only when it changed in substance)."""
        self.checks.want(task, pr, sha, conclusion, title, (conclusion, state))

    async def _read_all(self, tasks: list[Task]) -> list[PullSnapshot | None]:
        """``_read`` of each of ``tasks``, at most ``READS_AT_ONCE`` at a time."""
        limit = asyncio.Semaphore(READS_AT_ONCE)

        async def one(task: Task) -> PullSnapshot | None:
            async with limit:
                return await self._read(task)

        return list(await asyncio.gather(*(one(task) for task in tasks)))

    async def _read(self, task: Task) -> PullSnapshot | None:
        """A fresh snapshot of the task's pull request, with its reviews; kept in self.pulls."""
        repo, inst, number = task.repo, task.installation_id or 0, task.pr_number or 0
        required = tuple(self.repos.config(repo).merge.required_checks)
        started = self.pulls.epoch()
        try:
            pull, everyone = await asyncio.gather(
                self.github.pull(inst, repo, number, required),
                self.github.reviews(inst, repo, number),
            )
            reviews = await writer_reviews(self.github, self.writers, inst, repo, number, everyone)
        except GitHubError as exc:
            log.warning("pull_snapshot_failed %s: %s", task.ref, exc)
            return None
        mine = agent_verdict(everyone, self.identity.login, pull.head_sha)
        pull = dataclasses.replace(pull, reviews=reviews, agent_review=mine)
        self.pulls.put(repo, pull, started)
        if pull.head_sha != task.head_sha:  # e.g. after "update branch"
            await asyncio.to_thread(
                functools.partial(self.store.update_task, task.ref, head_sha=pull.head_sha)
            )
        return pull

    async def _execute(self, action: StewardAction, pull: PullSnapshot | None) -> None:
        task = await asyncio.to_thread(self.store.get_task, action.task)
        if task is None or task.installation_id is None:
            return
        if (
            task.state is TaskState.IN_REVIEW
            and action.kind in ("wait", "update_branch", "merge", "enqueue")
            and action.wait is not WaitFor.HELD  # its reason says why it waits
        ):
            if task.reason is not None or task.detail is not None:
                # no longer waiting for a re-review: say so
                await self.views.set_state(task, TaskState.IN_REVIEW, detail=None)
        if action.kind == "merge" and action.pr and action.sha:
            await self._merge(task, action.pr, action.sha, pull)
        elif action.kind == "enqueue" and action.pr and action.sha:
            await self.queue.enqueue(task, action.pr, action.sha)
        elif action.kind == "update_branch" and action.pr and action.sha:
            await self._update_branch(task, action.pr, action.sha)
        elif action.kind == "retarget" and task.state is TaskState.IN_REVIEW:
            await self.stacks.retarget(task, action)
        elif action.kind == "rerun" and task.state is TaskState.IN_REVIEW:
            await self.red.rerun(task, action)
        elif action.kind == "await_review" and task.state is TaskState.IN_REVIEW:
            self.views.merging.discard(task.ref)
            if task.reason != action.why:  # shown in the status comment
                await self.views.transition(task, TaskState.IN_REVIEW, action.why)
        elif action.kind == "revise" and task.state is TaskState.IN_REVIEW:
            # Back to the agent, on the same branch and pull request, with the feedback.
            # Not a failed attempt: like a rate limit, the attempt is refunded. The review
            # agent's request counts a round, as it goes back (a restart never gives one more).
            log.info("changes_requested %s review=%s", task.ref, action.review_id)
            verdict = pull.agent_review if pull is not None else None
            agents = verdict is not None and verdict.id == action.review_id
            rounds = task.agent_review_rounds + 1 if agents else task.agent_review_rounds
            self.views.merging.discard(task.ref)
            await self.views.transition(
                task,
                TaskState.QUEUED,
                action.why,
                worker=None,
                review_id=action.review_id,
                attempt=max(0, task.attempt - 1),
                agent_review_rounds=rounds,
            )
        elif action.kind == "review" and task.state is TaskState.IN_REVIEW:
            # A review job for this head: kept on the task as it goes, so it is never sent
            # twice for one head; not an attempt of the task's agent.
            log.info("review_requested %s head=%s", task.ref, action.sha)
            self.views.merging.discard(task.ref)
            await self.views.transition(
                task,
                TaskState.QUEUED,
                action.why,
                worker=None,
                attempt=max(0, task.attempt - 1),
                agent_review_head=action.sha,
            )
        elif action.kind == "fix_checks" and task.state is TaskState.IN_REVIEW:
            await self.red.fix(task, action)
        elif action.kind == "rebase" and task.state is TaskState.IN_REVIEW:
            # A rebase job (git, no agent) on the same branch, pushed against this head; like
            # a review round, not an attempt of the agent's.
            log.info("rebase_requested %s head=%s", task.ref, action.sha)
            self.views.merging.discard(task.ref)
            await self.views.transition(
                task, TaskState.QUEUED, action.why, worker=None, attempt=max(0, task.attempt - 1)
            )
        elif action.kind == "redispatch" and task.state is TaskState.IN_REVIEW:
            self.views.merging.discard(task.ref)
            await self.views.transition(task, TaskState.QUEUED, action.why, worker=None)
        elif action.kind == "mark_merged":
            self.views.merging.discard(task.ref)
            merge_sha = pull.merge_sha if pull else None
            await self.views.set_state(
                task, TaskState.MERGED, merged_at=time.time(), merge_sha=merge_sha
            )
            if pull is not None and pull.merge_queue and task.state is TaskState.IN_REVIEW:
                await self.queue.landed(task, pull)
        elif action.kind == "fail" and task.state is TaskState.IN_REVIEW:
            self.views.merging.discard(task.ref)
            if self.metrics:
                self.metrics.merges.inc(outcome="failed")
            why = action.why
            if action.check and action.sha and isinstance(why, Failed):
                quoted = await self.red.failures(task, action.sha, (action.check,))
                if quoted:  # the last failure, for the human who takes over
                    why = Failed(f"{why.reason}:\n\n{_quote(quoted[0])}", why.pr)
            await self.views.transition(task, TaskState.FAILED, why)

    async def _merge(self, task: Task, pr: int, sha: str, pull: PullSnapshot | None) -> None:
        """Merge the pull request at exactly ``sha`` (GitHub refuses if its head moved)."""
        inst = task.installation_id or 0
        config = self.repos.config(task.repo)
        self.views.merging.add(task.ref)
        title = f"{task.title} (#{pr})"
        outcome = await self.github.merge(
            inst, task.repo, pr, sha=sha, method=config.merge.method, title=title
        )
        self.pulls.forget(task.repo, pull=pr)
        if not outcome.merged:
            if self.metrics:
                self.metrics.merges.inc(outcome="refused")
            log.info("merge_refused %s: %s %s", task.ref, outcome.status, outcome.message)
            return
        log.info("merged", extra={"repo": task.repo, "issue": task.number, "pr": pr})
        merged_into = f"merged into {pull.base_ref if pull else 'its base'}"
        await self._report(task, pr, sha, "success", merged_into, ("merged",))
        self.views.merging.discard(task.ref)
        if self.metrics:
            self.metrics.merges.inc(outcome="merged")
        await self.views.set_state(
            task, TaskState.MERGED, merged_at=time.time(), merge_sha=outcome.sha
        )
        default = (await self.github.repo(inst, task.repo)).default_branch
        if outcome.sha and pull and pull.base_ref == default:
            self.signals.note_base(task.repo, inst, outcome.sha)
        if pull and config.merge.delete_branch:
            await self.github.delete_branch(inst, task.repo, pull.head_ref)
        self.signals.steward_wake.set()  # the base moved: the next in line is updated

    async def _update_branch(self, task: Task, pr: int, sha: str) -> None:
        """Bring the base into the pull request (once per head it is asked for)."""
        key = (task.repo, pr)
        if self._updated.get(key) == sha:
            return  # already asked for this head; waiting for the new commit
        self.views.merging.add(task.ref)
        if await self.github.update_branch(task.installation_id or 0, task.repo, pr, sha):
            self._updated[key] = sha
            self.pulls.forget(task.repo, pull=pr)
            log.info("branch_updated %s", task.ref)
        await self.views.refresh_views()


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _queued(action: StewardAction, pull: PullSnapshot | None) -> bool:
    """In speculative mode, what the merge queue does instead of the serial steward: merging,
    bringing a branch up to date (a candidate merges the current base), and saying so."""
    if action.kind == "merge":
        return True
    if action.kind == "update_branch":
        return pull is None or check_verdict(pull)[0] != "red"  # red: tested again first
    return action.kind == "wait" and action.wait in (WaitFor.MERGE_AHEAD, WaitFor.FRONT)


def _cached(
    action: StewardAction, pulls: Mapping[IssueRef, PullSnapshot], fresh: set[IssueRef]
) -> bool:
    """Does ``action`` rest on a remembered snapshot rather than one read in this pass?"""
    return action.task in pulls and action.task not in fresh
