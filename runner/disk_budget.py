"""The runner's disk budget: eviction from the worktree pool of ``runner.workspace.Workspaces``.

After each job the runner calls ``enforce_budget``: past ``disk_budget_mb`` under the work
directory, idle worktrees go first, least recently used first, then mirrors that no worktree
and no prepare in flight depends on. A busy worktree is never touched. Sizes count allocated
blocks, and hard links once (worktrees share nothing with their mirror, but clones may).

The pool's records (``Slot``, ``RepoState``) live here too, shared by both halves.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner.git import RepoMirror, worktree_admin_dir

log = logging.getLogger(__name__)


@dataclass
class Slot:
    repo: str
    path: Path
    busy: bool
    branch: str | None = None
    last_used: int = 0  # a tick of Workspaces._ticks, for LRU order
    releasing: bool = False


@dataclass
class RepoState:
    mirror: RepoMirror
    active: int = 0  # prepares in flight (a mirror is never evicted under them)
    adopted: bool = False
    adopt_lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: int = 0
    slots: dict[Path, Slot] = field(default_factory=dict)


class DiskBudget:
    """Evicts from a pool of worktrees and mirrors it shares with ``Workspaces``.

    ``lock`` and ``repos`` are the pool's bookkeeping (the same objects ``Workspaces`` holds);
    ``forget`` removes a reserved worktree from disk and from the pool.
    """

    def __init__(
        self,
        root: Path,
        budget_mb: int | None,
        *,
        lock: threading.Lock,
        repos: dict[str, RepoState],
        forget: Callable[[RepoState, Slot], None],
    ) -> None:
        self.root = root
        self.disk_budget_mb = budget_mb
        self._lock = lock
        self._repos = repos
        self._forget = forget

    def enforce_budget(self) -> list[Path]:
        """Evict least-recently-used idle worktrees, then idle mirrors, until under budget."""
        if self.disk_budget_mb is None:
            return []
        budget = self.disk_budget_mb * 1024 * 1024
        used = disk_bytes(self.root)
        removed: list[Path] = []
        while used > budget:
            victim = self._reserve_lru_idle_slot()
            if victim is None:
                break
            state, slot = victim
            size = disk_bytes(slot.path) + disk_bytes(worktree_admin_dir(slot.path))
            self._forget(state, slot)
            log.info("workspace_evicted path=%s mb=%.1f", slot.path, size / 2**20)
            removed.append(slot.path)
            used -= size
        while used > budget:
            path, size = self._evict_lru_idle_mirror()
            if path is None:
                break
            log.info("mirror_evicted path=%s mb=%.1f", path, size / 2**20)
            removed.append(path)
            used -= size
        return removed

    def usage_mb(self) -> float:
        """Disk used under ``root`` (allocated blocks, hard links counted once), in MiB."""
        return disk_bytes(self.root) / 2**20

    def _reserve_lru_idle_slot(self) -> tuple[RepoState, Slot] | None:
        with self._lock:
            idle = [(s.last_used, st, s) for st in self._repos.values() for s in st.slots.values()]
            idle = [item for item in idle if not item[2].busy]
            if not idle:
                return None
            _, state, slot = min(idle, key=lambda item: item[0])
            slot.busy = True
            return state, slot

    def _evict_lru_idle_mirror(self) -> tuple[Path | None, int]:
        """Delete the least recently used mirror with no worktree and no prepare in flight."""
        with self._lock:  # held throughout, so no prepare can start on the mirror meanwhile
            candidates = []
            for git_dir in sorted(self.root.glob("mirrors/*/*.git")):
                repo = f"{git_dir.parent.name}/{git_dir.name.removesuffix('.git')}"
                state = self._repos.get(repo)
                if state is not None and (state.active or state.slots):
                    continue
                if any((git_dir / "worktrees").glob("*")):
                    continue  # some worktree outside the pool still depends on it
                used = state.last_used if state is not None else 0
                candidates.append((used, git_dir.stat().st_mtime, repo, git_dir))
            if not candidates:
                return None, 0
            _, _, repo, git_dir = min(candidates)
            size = disk_bytes(git_dir)
            state = self._repos.pop(repo, None)
            mirror = state.mirror if state is not None else RepoMirror(self.root, repo, "")
            mirror.destroy()
            return git_dir, size


def disk_bytes(root: Path) -> int:
    """Allocated bytes under ``root``, not following symlinks, each inode once."""
    try:
        top = os.lstat(root)
    except OSError:
        return 0
    if not stat.S_ISDIR(top.st_mode):
        return top.st_blocks * 512
    seen: set[tuple[int, int]] = set()
    total = top.st_blocks * 512
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
    return total
