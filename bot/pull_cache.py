"""Pull request snapshots the steward has read, kept until an event says they changed.

Without it, every steward pass re-read every pull request in review (four API calls each), and
a pass runs on every pull request, check and status event: with many agents' pull requests
waiting for CI, that is O(events x pull requests) calls, which spends an installation's rate
limit and the bot's CPU on answers that have not changed.

A snapshot is dropped when an event names its pull request, its head commit or its head
branch, and after ``ttl_s`` in any case, so a lost webhook delays the steward but never stalls
it. A snapshot GitHub was still computing (``mergeable`` unknown) is never kept.

A base that moved is deliberately not a reason to drop every pull request on it (that would be
O(pull requests) reads per merge): it only changes mergeability, and the steward acts on that
only for the front of the merge queue, which it reads fresh anyway (below). A pull request
further back that now conflicts is found when it reaches the front, when its checks finish,
or after ``ttl_s``.

The cache is for looking, never for acting: the steward re-reads a pull request before any
action other than waiting (``bot.steward``), so a stale snapshot can only make it wait longer.
A read that an event overtook is not kept: ``put`` takes the epoch its read started at.

With several bot replicas, a webhook reaches one of them, while the steward runs where the
repository's steward lock is held. That replica learns of the others' deliveries from the
shared store (``bot.steward``), and notes each delivery once: ``note`` skips a delivery id it
has already seen.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.core.steward import PullSnapshot

_MAX_KEPT = 10_000  # invalidations (and snapshots) remembered before old ones are dropped


class PullCache:
    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[tuple[str, int], tuple[PullSnapshot, float]] = {}
        self._epochs = itertools.count(1)
        self._epoch = 0
        self._floor = 0  # reads started before this are not kept (the marks were pruned)
        # What an event named, and when (epoch): (repo, "pull"|"sha"|"branch", value)
        self._marks: dict[tuple[str, str, object], int] = {}
        self._noted: dict[str, None] = {}  # delivery ids noted, oldest first

    def seen(self, guid: str) -> bool:
        """Whether the delivery ``guid`` was noted already (here or from the store)."""
        return guid in self._noted

    def epoch(self) -> int:
        """Call before reading a pull request; pass the result to ``put``."""
        return self._epoch

    def get(self, repo: str, number: int) -> PullSnapshot | None:
        entry = self._entries.get((repo, number))
        if entry is None:
            return None
        if self._clock() - entry[1] > self.ttl_s:
            del self._entries[(repo, number)]
            return None
        return entry[0]

    def put(self, repo: str, snapshot: PullSnapshot, started: int) -> bool:
        """Keep ``snapshot`` unless GitHub was still computing it or an event overtook it."""
        if snapshot.mergeable is None or snapshot.mergeable_state == "unknown":
            return False
        names = (
            ("pull", snapshot.number),
            ("sha", snapshot.head_sha),
            ("branch", snapshot.head_ref),
        )
        if started < self._floor or any(
            self._marks.get((repo, kind, value), 0) > started for kind, value in names
        ):
            return False
        now = self._clock()
        if len(self._entries) >= _MAX_KEPT:  # pull requests that left review unannounced
            self._entries = {k: v for k, v in self._entries.items() if now - v[1] <= self.ttl_s}
        self._entries[(repo, snapshot.number)] = (snapshot, now)
        return True

    def forget(
        self,
        repo: str,
        *,
        pull: int | None = None,
        sha: str | None = None,
        branch: str | None = None,
    ) -> None:
        """An event changed the pull request ``pull``, the commit ``sha`` or the ``branch``
        (as a pull request's head)."""
        self._epoch = next(self._epochs)
        if len(self._marks) >= _MAX_KEPT:
            self._marks.clear()
            self._floor = self._epoch
        for kind, value in (("pull", pull), ("sha", sha), ("branch", branch)):
            if value is not None:
                self._marks[(repo, kind, value)] = self._epoch
        for key, (snap, _) in list(self._entries.items()):
            if key[0] == repo and (
                snap.number == pull
                or (sha is not None and snap.head_sha == sha)
                or (branch is not None and snap.head_ref == branch)
            ):
                del self._entries[key]

    def note(self, event: str, payload: Mapping[str, Any], guid: str | None = None) -> None:
        """Forget what a webhook delivery says changed (ours too: our merges move bases).

        ``guid``: the delivery's id; a delivery already noted is not noted again.
        """
        if guid is not None:
            if guid in self._noted:
                return
            self._noted[guid] = None
            if len(self._noted) > _MAX_KEPT:
                del self._noted[next(iter(self._noted))]
        repo = (payload.get("repository") or {}).get("full_name")
        if not isinstance(repo, str):
            return
        action = payload.get("action")
        if event.startswith("pull_request"):
            if event == "pull_request" and action in _COSMETIC and not _base_changed(payload):
                return  # labels, assignees, a new title or body: nothing the steward reads
            pull = payload.get("pull_request") or {}
            number, sha = pull.get("number"), (pull.get("head") or {}).get("sha")
            self.forget(repo, pull=number if isinstance(number, int) else None, sha=_str(sha))
        elif event in ("check_run", "check_suite"):
            # Only a finished check changes a verdict the steward would act on: a started one
            # leaves "pending" pending, and acting on a remembered red or green reads afresh.
            if action == "completed":
                self.forget(repo, sha=_str((payload.get(event) or {}).get("head_sha")))
        elif event == "status":
            if payload.get("state") != "pending":
                self.forget(repo, sha=_str(payload.get("sha")))
        elif event == "push":
            ref = _str(payload.get("ref")) or ""
            if ref.startswith("refs/heads/"):
                self.forget(repo, branch=ref.removeprefix("refs/heads/"))

    def forget_repo(self, repo: str) -> None:
        self._epoch = next(self._epochs)
        self._floor = self._epoch  # coarse, and rare (uninstall, removal)
        for key in [k for k in self._entries if k[0] == repo]:
            del self._entries[key]


#: The events ``note`` reads (what other replicas' deliveries are looked up for).
NOTED_EVENTS = ("pull_request", "pull_request_review", "check_run", "check_suite", "status", "push")

_COSMETIC = frozenset(
    {"labeled", "unlabeled", "assigned", "unassigned", "edited", "milestoned", "demilestoned",
     "review_requested", "review_request_removed", "locked", "unlocked"}
)  # fmt: skip


def _base_changed(payload: Mapping[str, Any]) -> bool:
    return "base" in (payload.get("changes") or {})


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
