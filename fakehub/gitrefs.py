"""Cheap, exact shortcuts for ``GitStore``'s hottest reads, without a git subprocess.

Every API read of fakehub used to start one to four ``git`` processes (rev-parse, check-ref-format,
merge-base, merge-tree, show). On a two-core machine that is most of fakehub's cost. These
shortcuts give the same answers:

- a branch name's validity is a pure function of the name (``git check-ref-format``, memoised);
- a branch tip is read from its ref file, or from ``packed-refs`` (git writes refs by rename,
  so a reader never sees half a ref); anything unusual falls back to git;
- facts about commits never change once the commit exists (``ImmutableMemo``): a commit's
  metadata, whether one commit is an ancestor of another, their merge's conflicts, their diff.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

SHA = re.compile(r"^[0-9a-f]{40}$")


@functools.lru_cache(maxsize=4096)
def ref_format_ok(ref: str) -> bool:
    """``git check-ref-format REF`` (the answer depends only on the name; it reads no
    configuration, so git gets only ``PATH``)."""
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}
    proc = subprocess.run(
        ["git", "check-ref-format", ref], capture_output=True, check=False, env=env
    )
    return proc.returncode == 0


def read_ref(repo: Path, ref: str) -> str | None | bool:
    """The sha a ref points to: from its loose file, else from ``packed-refs``.

    ``None``: the ref does not exist. ``False``: not answerable here (a symbolic ref or an
    unexpected file); ask git.
    """
    try:
        text = (repo / ref).read_text().strip()
    except FileNotFoundError:
        text = ""
    except (IsADirectoryError, NotADirectoryError, PermissionError, UnicodeDecodeError):
        return False
    if text:
        return text if SHA.match(text) else False
    try:
        packed = (repo / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    suffix = " " + ref
    for line in packed.splitlines():
        if line.endswith(suffix) and SHA.match(line[:40]) and len(line) == 40 + len(suffix):
            return line[:40]
    return None


def list_branches(repo: Path) -> dict[str, str] | None:
    """Every branch and its tip, as ``git for-each-ref refs/heads/`` gives them: the loose ref
    files, over ``packed-refs``. ``None``: something unusual (a symbolic ref, an unreadable
    file); ask git."""
    found: dict[str, str] = {}
    try:
        packed = (repo / "packed-refs").read_text()
    except FileNotFoundError:
        packed = ""
    except (OSError, UnicodeDecodeError):
        return None
    for line in packed.splitlines():
        sha, _, ref = line.partition(" ")
        if SHA.match(sha) and ref.startswith("refs/heads/"):
            found[ref.removeprefix("refs/heads/")] = sha
    heads = repo / "refs" / "heads"
    for folder, _, files in os.walk(heads):
        for name in files:
            if name.endswith(".lock"):
                continue  # a write in progress: the ref is its old value until the rename
            path = Path(folder) / name
            try:
                text = path.read_text().strip()
            except FileNotFoundError:
                continue  # deleted while we looked
            except (OSError, UnicodeDecodeError):
                return None
            if not SHA.match(text):
                return None
            found[path.relative_to(heads).as_posix()] = text
    return dict(sorted(found.items()))


class ImmutableMemo:
    """A bounded, thread-safe memo for answers about immutable git objects."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()  # outside the lock: git may take a while; a race computes it twice
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value
