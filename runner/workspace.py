"""Task workspaces: a warm pool of git worktrees per repository, the setup command (the disk
budget is `runner.disk_budget`).

Layout under ``root``: ``mirrors/<owner>/<name>.git`` (one bare ``RepoMirror`` per repository)
and ``workspaces/<owner>/<name>/w<N>`` (worktrees). A worktree is either *busy* (handed to one
task by ``prepare``, until ``release``) or *idle* (in the pool, clean, HEAD detached, no task
branch). ``prepare`` prefers an idle worktree and resets it to the new start, which rewrites
only the files that differ instead of every file. All methods are blocking and thread-safe;
the runner calls them through ``asyncio.to_thread``.

Locking: ``self._lock`` guards the bookkeeping only; git commands that touch the mirror's refs or
worktree list run under the mirror's own lock (inside ``RepoMirror``). The order is always
``self._lock`` then a mirror lock, never the reverse.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.disk_budget import DiskBudget, RepoState, Slot
from runner.git import GitError, RepoMirror
from runner.process import Flag
from runner.setup import SetupResult, run_setup

log = logging.getLogger(__name__)

__all__ = ["Prepared", "SetupResult", "WorkspaceError", "Workspaces", "run_setup"]


class WorkspaceError(GitError):
    """A workspace cannot be prepared as asked (for example its branch is in use)."""


@dataclass(frozen=True)
class Prepared:
    path: Path
    base_sha: str  # the commit HEAD starts at (origin/<base>, or origin/<branch> when continuing)
    reused: bool  # True when a warm worktree from the pool was reset, False for a new one
    setup: SetupResult | None  # None when there is no setup command


class Workspaces:
    """Worktrees for tasks, pooled per repository; see the module docstring."""

    def __init__(
        self, root: Path, *, pool_size: int = 4, disk_budget_mb: int | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._repos: dict[str, RepoState] = {}
        self._ticks = itertools.count(1)
        self.budget = DiskBudget(
            self.root,
            disk_budget_mb,
            lock=self._lock,
            repos=self._repos,
            forget=lambda state, slot: self._forget(state, slot, remove=True),
        )

    @property
    def disk_budget_mb(self) -> int | None:
        return self.budget.disk_budget_mb

    @disk_budget_mb.setter
    def disk_budget_mb(self, value: int | None) -> None:
        self.budget.disk_budget_mb = value

    def enforce_budget(self) -> list[Path]:
        """Evict least-recently-used idle worktrees, then idle mirrors, until under budget."""
        return self.budget.enforce_budget()

    def usage_mb(self) -> float:
        """Disk used under the work directory, in MiB."""
        return self.budget.usage_mb()

    # -- public API --------------------------------------------------------------------------

    def prepare(
        self,
        *,
        repo: str,
        clone_url: str,
        token: str,
        branch: str,
        base: str = "main",
        continue_from_branch: bool = False,
        setup_command: str | None = None,
        setup_timeout_s: float = 600,
        setup_stall_timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
        base_sha: str | None = None,
        cancel: Flag | None = None,
        pid_dir: Path | None = None,
    ) -> Prepared:
        """Fetch, take a clean worktree on ``branch``, run the setup command (see the module doc).

        A failing setup command does not raise: its result is in ``Prepared.setup`` and the
        worktree stays the caller's until ``release``. Git failures raise ``GitError``. The
        setup command is killed when ``cancel`` is set (``runner.setup.run_setup``); its
        process group is recorded in ``pid_dir`` while it runs (``runner.process``).
        """
        state = self._enter(repo, clone_url)
        try:
            self._adopt(state)
            slot = self._take(state, branch)
            # The bot says where the base is; when the mirror already has exactly that, the
            # fetch (a network round trip) can be skipped: dispatch latency matters.
            fresh = (
                base_sha is not None
                and not continue_from_branch
                and state.mirror.remote_sha(base) == base_sha
            )
            scrubbed = self._fetch_while_scrubbing(
                state,
                slot,
                token,
                skip_fetch=fresh,
                only=None if continue_from_branch else base,
                want=None if continue_from_branch else base_sha,
            )
            try:
                sha, reused = self._checkout(
                    state.mirror, slot, branch, base, continue_from_branch, scrubbed=scrubbed
                )
            except BaseException:
                self._forget(state, slot, remove=True)
                raise
        finally:
            with self._lock:
                state.active -= 1
        setup = None
        if setup_command:
            setup = run_setup(setup_command, slot.path, env=env, timeout_s=setup_timeout_s,
                              secrets=(token,), stall_timeout_s=setup_stall_timeout_s,
                              cancel=cancel, pid_dir=pid_dir)  # fmt: skip
            log.info(
                "workspace_setup repo=%s branch=%s ok=%s exit=%s killed_by=%s seconds=%.1f",
                repo, branch, setup.ok, setup.exit_code, setup.killed_by, setup.seconds,
            )  # fmt: skip
        return Prepared(path=slot.path, base_sha=sha, reused=reused, setup=setup)

    def release(self, prepared_path: Path, *, keep_warm: bool = True) -> None:
        """Give a worktree back: cleaned into the pool, or removed when the pool is full.

        Either way the task's local branch is deleted. Releasing twice is a no-op.
        """
        path = Path(prepared_path).resolve()
        with self._lock:
            state, slot = self._find(path)
            if state is None or slot is None or not slot.busy or slot.releasing:
                log.warning("workspace_release_unknown path=%s", path)
                return
            slot.releasing = True
        keep = keep_warm and self._idle_count(state) < self.pool_size
        if keep:
            try:
                state.mirror.clean_worktree(path)
            except GitError:
                log.exception("workspace_clean_failed path=%s", path)
                keep = False
        branch = slot.branch
        with self._lock:
            keep = keep and sum(1 for s in state.slots.values() if not s.busy) < self.pool_size
            if keep:
                slot.branch, slot.last_used = None, next(self._ticks)
        if not keep:
            self._forget(state, slot, remove=True)
        if branch is not None:
            try:
                state.mirror.delete_branch(branch)
            except GitError:
                log.exception("workspace_branch_delete_failed branch=%s", branch)
        try:
            state.mirror.maintain()
        except GitError:
            log.exception("workspace_maintenance_failed repo=%s", state.mirror.full_name)
        if keep:
            with self._lock:
                slot.busy = slot.releasing = False  # back in the pool once its branch is gone

    def remove_branch_worktrees(self, repo: str, branch: str) -> None:
        """After a merge or cancel: remove idle worktrees holding ``branch`` and the local branch.

        A busy worktree is never taken from its task; its ``release`` deletes the branch.
        """
        state = self._known(repo)
        if state is None or not (state.mirror.path / "HEAD").exists():
            return
        mirror = state.mirror
        with self._lock:
            busy = {s.path for s in state.slots.values() if s.busy and s.branch == branch}
            idle = [s for s in state.slots.values() if not s.busy and s.branch == branch]
            for slot in idle:
                slot.busy = True  # reserve it while it is removed
        for slot in idle:
            self._forget(state, slot, remove=True)
        for path, held in mirror.worktrees().items():
            if held == branch and path.resolve() not in busy and not self._is_slot(state, path):
                mirror.remove_worktree(path)  # a worktree made outside the pool
        if not busy:
            mirror.delete_branch(branch)

    # -- bookkeeping -------------------------------------------------------------------------

    def _enter(self, repo: str, clone_url: str) -> RepoState:
        with self._lock:
            state = self._repos.get(repo)
            if state is None:
                state = self._repos[repo] = RepoState(RepoMirror(self.root, repo, clone_url))
            elif state.mirror.clone_url != clone_url:
                state.mirror = RepoMirror(self.root, repo, clone_url)  # shares the lock by path
            state.active += 1
            state.last_used = next(self._ticks)
            return state

    def _known(self, repo: str) -> RepoState | None:
        """The state of ``repo``; for a mirror left on disk by an earlier run, a new state."""
        with self._lock:
            state = self._repos.get(repo)
            if state is None:
                mirror = RepoMirror(self.root, repo, "")  # only local operations will run
                if not (mirror.path / "HEAD").exists():
                    return None
                state = self._repos[repo] = RepoState(mirror)
        self._adopt(state)
        return state

    def _adopt(self, state: RepoState) -> None:
        """Once per repository and process: take over worktrees an earlier run left on disk.

        Callers wait until it is done, so no task starts on the repository meanwhile.
        """
        with state.adopt_lock:
            if not state.adopted:
                self._adopt_leftovers(state)
                state.adopted = True

    def _adopt_leftovers(self, state: RepoState) -> None:
        mirror = state.mirror
        mirror.prune_worktrees()
        registered = {p.resolve(): branch for p, branch in mirror.worktrees().items()}
        folder = self._folder(mirror.full_name)
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            path = path.resolve()
            with self._lock:
                if path in state.slots:
                    continue
                idle = sum(1 for s in state.slots.values() if not s.busy)
                take = path in registered and mirror.owns_worktree(path) and idle < self.pool_size
                if take:  # kept busy until it is cleaned
                    state.slots[path] = Slot(mirror.full_name, path, busy=True)
            if not take:
                if (mirror.path / "HEAD").exists():
                    mirror.remove_worktree(path)
                else:  # the mirror is gone (evicted or deleted): the folder is dead weight
                    shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                mirror.clean_worktree(path)
                held = registered[path]
                if held is not None:
                    mirror.delete_branch(held)
            except GitError:
                log.exception("workspace_adopt_failed path=%s", path)
                self._forget(state, state.slots[path], remove=True)
                continue
            with self._lock:
                state.slots[path].busy = False
                state.slots[path].last_used = next(self._ticks)
            log.info("workspace_adopted path=%s", path)

    def _take(self, state: RepoState, branch: str) -> Slot:
        """Reserve an idle worktree (the most recently used), or a new path; never a busy one."""
        with self._lock:
            if any(s.busy and s.branch == branch for s in state.slots.values()):
                raise WorkspaceError(f"{state.mirror.full_name}: branch {branch} is in use")
            idle = [s for s in state.slots.values() if not s.busy]
            if idle:
                slot = max(idle, key=lambda s: s.last_used)
            else:
                folder = self._folder(state.mirror.full_name)
                path = next(
                    folder / f"w{n}"
                    for n in itertools.count(1)
                    if folder / f"w{n}" not in state.slots and not (folder / f"w{n}").exists()
                )
                slot = state.slots[path] = Slot(state.mirror.full_name, path, busy=True)
            slot.busy, slot.last_used = True, next(self._ticks)
            return slot

    def _fetch_while_scrubbing(
        self,
        state: RepoState,
        slot: Slot,
        token: str,
        *,
        skip_fetch: bool = False,
        only: str | None = None,
        want: str | None = None,
    ) -> bool:
        """Fetch the mirror while a warm worktree is scrubbed in parallel; True if it was.

        Scrubbing touches only the worktree's files and fetching only the mirror, so they
        overlap safely. When the fetch fails, a warm worktree goes back to the pool.
        """
        failures: list[BaseException] = []

        def scrub() -> None:
            try:
                state.mirror.scrub_worktree(slot.path)
            except BaseException as exc:  # reported below; the worktree is then added afresh
                failures.append(exc)

        warm = slot.path.exists()
        worker = threading.Thread(target=scrub, name="workspace-scrub", daemon=True)
        if warm:
            worker.start()
        try:
            if not skip_fetch:
                state.mirror.fetch(token, branch=only, want=want)
        except BaseException:
            if warm:
                worker.join()
            with self._lock:
                if warm and not failures:
                    slot.busy = False
                else:
                    state.slots.pop(slot.path, None)
            raise
        if warm:
            worker.join()
        if failures:
            log.warning("workspace_scrub_failed path=%s: %s", slot.path, failures[0])
        return warm and not failures

    def _checkout(
        self,
        mirror: RepoMirror,
        slot: Slot,
        branch: str,
        base: str,
        continue_from_branch: bool,
        *,
        scrubbed: bool,
    ) -> tuple[str, bool]:
        """Put ``slot`` on ``branch``: switch the scrubbed warm worktree, else add one."""
        old = slot.branch
        slot.branch = branch
        sha = mirror.start_sha(branch, base, from_remote_branch=continue_from_branch)
        if scrubbed:
            try:
                mirror.switch_worktree(slot.path, branch, sha)
            except GitError:
                log.warning("workspace_reset_failed path=%s; adding afresh", slot.path)
            else:
                if old and old != branch:
                    mirror.delete_branch(old)
                return sha, True
        mirror.free_branch(branch)  # `worktree add -B` refuses a branch held elsewhere
        mirror.add_worktree(slot.path, branch, base, from_remote_branch=continue_from_branch)
        return mirror.head_sha(slot.path), False

    def _forget(self, state: RepoState, slot: Slot, *, remove: bool) -> None:
        if remove:
            try:
                state.mirror.remove_worktree(slot.path)
            except GitError:
                log.exception("workspace_remove_failed path=%s", slot.path)
                shutil.rmtree(slot.path, ignore_errors=True)
        with self._lock:
            state.slots.pop(slot.path, None)

    def _idle_count(self, state: RepoState) -> int:
        with self._lock:
            return sum(1 for s in state.slots.values() if not s.busy)

    def _find(self, path: Path) -> tuple[RepoState | None, Slot | None]:
        for state in self._repos.values():
            if path in state.slots:
                return state, state.slots[path]
        return None, None

    def _is_slot(self, state: RepoState, path: Path) -> bool:
        with self._lock:
            return path.resolve() in state.slots

    def _folder(self, repo: str) -> Path:
        owner, _, name = repo.partition("/")
        return self.root / "workspaces" / owner / name
