"""The task graph: which queued tasks are ready, which wait, which are stuck in cycles.

A task's blockers come from ``Task.blocked_by``. A blocker is *done* when it is a task in state
``merged``, a reference in ``done`` (a merged task the caller left out: the shell passes only the
working set, see ``bot.store.working_set``), or an issue that is not a task and is closed as
completed (``external[ref] is True``).
A blocker task that failed or was cancelled is not done: its dependents wait until a human
requeues or unlinks it.

``analyse`` is one linear pass: build the edges between tasks that are not merged, order them
with Kahn's algorithm, find the strongly connected components (Tarjan, iterative) only among the
nodes Kahn could not order, then walk that order backwards to give every pending task
(queued, running or in review)

* its *effective priority*: the most urgent priority of itself and every pending task
  transitively blocked by it, and
* its *chain*: the length of the longest chain of pending tasks waiting behind it.

Ready tasks are dispatched by effective priority (ascending), chain (descending), ``created_at``,
then ``(repo, number)``.

(Stdlib ``graphlib.TopologicalSorter`` reports only one cycle per ``CycleError``, and its
``static_order`` alone takes longer on the 10,000-task benchmark than all of ``analyse``, so the
walk is done by hand over integer indices.)

``ReadySet`` keeps the ready set current one completion at a time, for callers that cannot
afford a full ``analyse`` per event.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bot.core.model import PENDING_STATES, IssueRef, Task, TaskState

_MERGED, _QUEUED = TaskState.MERGED, TaskState.QUEUED
# IssueRef(repo, n) runs a Python-level __new__; building the tuple directly is twice as fast.
_new_ref = tuple.__new__


@dataclass(frozen=True)
class GraphReport:
    #: Queued tasks whose blockers are all done, in dispatch order.
    ready: tuple[IssueRef, ...]
    #: Queued task -> its blockers that are not done yet (in the order the task lists them).
    waiting: dict[IssueRef, tuple[IssueRef, ...]]
    #: Each dependency cycle once, members sorted. Tasks in a cycle are never ready.
    cycles: tuple[tuple[IssueRef, ...], ...]
    #: Task (not merged) -> blockers that are neither tasks nor known external issues.
    missing: dict[IssueRef, tuple[IssueRef, ...]]
    #: Pending task -> effective (inherited) priority.
    priority: Mapping[IssueRef, int] = field(default_factory=dict)
    #: Pending task -> longest chain of pending tasks waiting behind it.
    chain: Mapping[IssueRef, int] = field(default_factory=dict)

    def dispatch_key(self, task: Task) -> tuple[int, int, float, str, int]:
        """The sort key ``ready`` is ordered by; usable for any pending task."""
        ref = task.ref
        return (
            self.priority.get(ref, task.priority),
            -self.chain.get(ref, 0),
            task.created_at,
            task.repo,
            task.number,
        )


def analyse(
    tasks: Sequence[Task],
    external: Mapping[IssueRef, bool],
    done: Collection[IssueRef] = frozenset(),
) -> GraphReport:
    """Classify ``tasks``; ``external`` maps issues that are not tasks to "closed as completed";
    ``done`` holds merged tasks that are not in ``tasks`` (they count as done, never missing).

    If two tasks share a reference, the later one wins.
    """
    n = len(tasks)
    refs: list[IssueRef] = [_new_ref(IssueRef, (t.repo, t.number)) for t in tasks]
    by_ref: dict[IssueRef, int] = dict(zip(refs, range(n), strict=True))
    merged = [t.state is _MERGED for t in tasks]
    live = [i for i in by_ref.values() if not merged[i]]  # one index per distinct reference

    dependents: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    waiting: dict[IssueRef, tuple[IssueRef, ...]] = {}
    missing: dict[IssueRef, tuple[IssueRef, ...]] = {}
    ready_nodes: list[int] = []
    by_ref_get, external_get = by_ref.get, external.get
    for i in live:  # the hot loop: one dict lookup per edge
        task = tasks[i]
        open_blockers: list[IssueRef] | None = None
        degree = 0
        outside = False
        for blocker in task.blocked_by:  # Task.__post_init__ removed duplicates
            j = by_ref_get(blocker)
            if j is not None:
                if merged[j]:
                    continue
                dependents[j].append(i)
                degree += 1
            else:
                outside = True
                if external_get(blocker) is True or blocker in done:
                    continue
            if open_blockers is None:
                open_blockers = [blocker]
            else:
                open_blockers.append(blocker)
        indegree[i] = degree
        if outside:
            unknown = tuple(
                b
                for b in task.blocked_by
                if b not in by_ref and b not in external and b not in done
            )
            if unknown:
                missing[refs[i]] = unknown
        if task.state is _QUEUED:
            if open_blockers:
                waiting[refs[i]] = tuple(open_blockers)
            else:
                ready_nodes.append(i)

    order = _kahn(live, indegree, dependents)
    components: list[list[int]] = []
    if len(order) < len(live):
        ordered = set(order)
        components = _tarjan([i for i in live if i not in ordered], dependents)
    priority, chain = _propagate(tasks, order, components, dependents)

    cycles = sorted(
        tuple(sorted(refs[i] for i in comp))
        for comp in components
        if len(comp) > 1 or comp[0] in dependents[comp[0]]
    )
    ready_nodes.sort(
        key=lambda i: (
            priority[i],
            -chain[i],
            tasks[i].created_at,
            tasks[i].repo,
            tasks[i].number,
        )
    )
    return GraphReport(
        ready=tuple(refs[i] for i in ready_nodes),
        waiting=waiting,
        cycles=tuple(cycles),
        missing=missing,
        priority=_NodeValues(by_ref, priority, priority),
        chain=_NodeValues(by_ref, chain, priority),
    )


class _NodeValues(Mapping[IssueRef, int]):
    """A read-only per-task value, looked up through the index (no copy into a dict).

    ``present[i] is None`` marks nodes without a value (tasks that are not pending).
    """

    __slots__ = ("_index", "_values", "_present")

    def __init__(
        self,
        index: Mapping[IssueRef, int],
        values: Sequence[int | None],
        present: Sequence[int | None],
    ) -> None:
        self._index, self._values, self._present = index, values, present

    def __getitem__(self, ref: IssueRef) -> int:
        i = self._index[ref]
        value = self._values[i]
        if value is None or self._present[i] is None:
            raise KeyError(ref)
        return value

    def __iter__(self) -> Iterator[IssueRef]:
        present = self._present
        return (ref for ref, i in self._index.items() if present[i] is not None)

    def __len__(self) -> int:
        present = self._present
        return sum(1 for i in self._index.values() if present[i] is not None)

    def __repr__(self) -> str:
        return repr(dict(self))


def _kahn(live: list[int], indegree: list[int], dependents: Sequence[list[int]]) -> list[int]:
    """Blockers-first order of every node not in or behind a cycle (consumes ``indegree``)."""
    order = [i for i in live if indegree[i] == 0]
    append = order.append
    for i in order:  # the list grows while we walk it
        for d in dependents[i]:
            left = indegree[d] - 1
            indegree[d] = left
            if not left:
                append(d)
    return order


def _tarjan(nodes: Iterable[int], dependents: Sequence[list[int]]) -> list[list[int]]:
    """Strongly connected components, dependents first (Tarjan's algorithm without recursion)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = dependents[node]
            descended = False
            while pos < len(children):
                child = children[pos]
                pos += 1
                if child not in index:
                    work.append((node, pos))
                    work.append((child, 0))
                    descended = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if descended:
                continue
            if work:  # report our low link to the parent
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _propagate(
    tasks: Sequence[Task],
    order: list[int],
    components: list[list[int]],
    dependents: Sequence[list[int]],
) -> tuple[list[int | None], list[int]]:
    """Effective priority and chain length of every pending node, dependents before blockers.

    Nodes that are not pending keep priority ``None``: nothing inherits through them.
    """
    priority: list[int | None] = [None] * len(tasks)
    chain = [0] * len(tasks)
    pending = PENDING_STATES
    # Nodes in or behind cycles first: Tarjan emits components dependents-first.
    for comp in components:
        members = set(comp)
        alive = [i for i in comp if tasks[i].state in pending]
        if not alive:
            continue
        best = min(tasks[i].priority for i in alive)
        longest = -1
        for i in comp:
            for d in dependents[i]:
                p = priority[d]
                if d in members or p is None:
                    continue
                best = min(best, p)
                longest = max(longest, chain[d])
        for i in alive:
            priority[i] = best
            chain[i] = longest + len(alive)
    failed, cancelled = TaskState.FAILED, TaskState.CANCELLED  # merged tasks are not in `order`
    for i in reversed(order):
        task = tasks[i]
        state = task.state
        if state is failed or state is cancelled:
            continue
        best = task.priority
        longest = 0
        for d in dependents[i]:
            p = priority[d]
            if p is None:  # failed or cancelled: nothing waits behind it through this edge
                continue
            if p < best:
                best = p
            c = chain[d] + 1
            if c > longest:
                longest = c
        priority[i] = best
        chain[i] = longest
    return priority, chain


class ReadySet:
    """The ready set kept up to date one completion at a time, for a dispatcher in a loop.

    Built once from a full ``analyse`` (so it starts with the same ready set, order keys and
    cycles); afterwards ``mark_done(ref)`` costs time proportional to the tasks waiting on
    ``ref``. Order keys (effective priority, chain) are those of the build: rebuild after the
    task set changes (a new task, a relabel, a blocker edited) or when order must be exact.
    This is the one mutable class in ``bot.core``; it is not thread-safe.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        external: Mapping[IssueRef, bool],
        done: Collection[IssueRef] = frozenset(),
    ) -> None:
        self.report = analyse(tasks, external, done)
        latest = {task.ref: task for task in tasks}
        self._keys = {ref: self.report.dispatch_key(latest[ref]) for ref in self.report.waiting}
        self._keys.update({ref: self.report.dispatch_key(latest[ref]) for ref in self.report.ready})
        self._ready: dict[IssueRef, None] = dict.fromkeys(self.report.ready)
        self._open: dict[IssueRef, set[IssueRef]] = {
            ref: set(blockers) for ref, blockers in self.report.waiting.items()
        }
        self._waiters: dict[IssueRef, list[IssueRef]] = {}
        for ref, blockers in self.report.waiting.items():
            for blocker in blockers:
                self._waiters.setdefault(blocker, []).append(ref)
        self._done: set[IssueRef] = set()

    @property
    def ready(self) -> tuple[IssueRef, ...]:
        """Ready tasks not yet taken, in dispatch order."""
        return tuple(sorted(self._ready, key=self._keys.__getitem__))

    def waiting_on(self, ref: IssueRef) -> frozenset[IssueRef]:
        """The blockers ``ref`` still waits for (empty if it is ready or unknown)."""
        return frozenset(self._open.get(ref, ()))

    def mark_done(self, ref: IssueRef) -> tuple[IssueRef, ...]:
        """Record that ``ref`` (a task merged, or an issue closed as completed) is done.

        Returns the tasks that became ready because of it, in dispatch order. Idempotent.
        """
        if ref in self._done:
            return ()
        self._done.add(ref)
        self._ready.pop(ref, None)
        self._open.pop(ref, None)
        newly: list[IssueRef] = []
        for waiter in self._waiters.pop(ref, ()):
            blockers = self._open.get(waiter)
            if blockers is None:
                continue
            blockers.discard(ref)
            if not blockers:
                del self._open[waiter]
                self._ready[waiter] = None
                newly.append(waiter)
        newly.sort(key=self._keys.__getitem__)
        return tuple(newly)

    def take(self, ref: IssueRef) -> bool:
        """Remove a ready task (it was dispatched); ``False`` if it was not ready."""
        return self._ready.pop(ref, False) is None
