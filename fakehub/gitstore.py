"""Bare repositories on disk for fakehub, driven only through real git subprocesses.

Every repository lives at ``root/<owner>/<name>.git``. Reads need no lock; every write that
moves a ref holds the repository's lock and moves the ref with ``git update-ref NEW OLD`` so a
concurrent writer (a push through ``githttp``) can never be overwritten silently. Merges use
``git merge-tree --write-tree`` and ``git commit-tree``: nothing touches a working tree or the
repository's index, so a bare repository never gains a stray file.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from fakehub.gitobjects import (
    ZERO_SHA,
    CommitInfo,
    GitStoreError,
    Identity,
    MergeConflict,
    NotFastForward,
    NotFound,
    RefMoved,
    checked_rev,
    git_env,
    identity_env,
    iso_time,
)
from fakehub.gitrefs import SHA, ImmutableMemo, list_branches, read_ref, ref_format_ok

__all__ = [
    "ZERO_SHA",
    "CommitInfo",
    "GitStore",
    "GitStoreError",
    "Identity",
    "MergeConflict",
    "NotFastForward",
    "NotFound",
    "RefMoved",
    "git_env",
]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class GitStore:
    """Bare repositories under ``root``; thread-safe (one lock per repository for writes)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        # Facts about commits never change (repositories are never deleted): see gitrefs.
        self._memo = ImmutableMemo()
        self._commits: set[tuple[str, str]] = set()  # (repository, sha) known to be commits

    # -- plumbing ---------------------------------------------------------------------------

    def path(self, full_name: str) -> Path:
        owner, _, name = full_name.partition("/")
        if not (_NAME.match(owner) and _NAME.match(name)) or owner in {".", ".."}:
            raise GitStoreError(f"invalid repository name {full_name!r}")
        return self.root / owner / f"{name}.git"

    def lock(self, full_name: str) -> threading.RLock:
        """The write lock of one repository (``githttp`` holds it around a receive-pack)."""
        with self._locks_guard:
            return self._locks.setdefault(full_name.lower(), threading.RLock())

    def _git(
        self,
        full_name: str,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> subprocess.CompletedProcess[bytes]:
        path = self.path(full_name)
        if not path.is_dir():
            raise NotFound(f"no repository {full_name}")
        proc = subprocess.run(
            ["git", *args],
            cwd=path,
            input=input,
            env=git_env(env),
            capture_output=True,
            check=False,
        )
        if proc.returncode not in ok:
            tail = proc.stderr.decode(errors="replace").strip()[-2000:]
            raise GitStoreError(f"git {args[0]} failed ({proc.returncode}) in {full_name}: {tail}")
        return proc

    def _out(self, full_name: str, *args: str, **kwargs: object) -> str:
        return self._git(full_name, *args, **kwargs).stdout.decode().strip()  # type: ignore[arg-type]

    def _resolve(self, full_name: str, rev: str) -> str | None:
        """A branch name or a commit id to a commit sha (branches win)."""
        key = (full_name.lower(), rev)
        if SHA.match(rev) and key in self._commits:
            if read_ref(self.path(full_name), f"refs/heads/{rev}") is None:
                return rev  # a known commit, and no branch has that name
        ref = f"refs/heads/{checked_rev(rev)}"
        branch = read_ref(self.path(full_name), ref) if ref_format_ok(ref) else None
        if isinstance(branch, str):
            return branch  # a branch, read from its ref (branches win)
        # No such branch for certain (None): only the commit id is left to ask git about.
        candidates = (rev,) if branch is None else (f"refs/heads/{rev}", rev)
        for candidate in candidates:
            proc = self._git(
                full_name, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}",
                ok=(0, 1, 128),
            )  # fmt: skip
            if proc.returncode == 0:
                sha = proc.stdout.decode().strip()
                self._commits.add((full_name.lower(), sha))
                return sha
        return None

    def _commit(self, full_name: str, rev: str) -> str:
        sha = self._resolve(full_name, rev)
        if sha is None:
            raise NotFound(f"no commit {rev!r} in {full_name}")
        return sha

    def _branch_ref(self, branch: str) -> str:
        ref = f"refs/heads/{checked_rev(branch)}"
        if not ref_format_ok(ref):
            raise GitStoreError(f"invalid branch name {branch!r}")
        return ref

    def _move(self, full_name: str, branch: str, new: str, old: str | None) -> None:
        """Compare-and-swap a branch; ``old=None`` requires that the branch does not exist."""
        proc = self._git(
            full_name, "update-ref", self._branch_ref(branch), new, old or ZERO_SHA, ok=(0, 1, 128)
        )
        if proc.returncode != 0:
            raise RefMoved(f"{full_name}:{branch} moved: {proc.stderr.decode().strip()}")

    def _merge_tree(self, full_name: str, ours: str, theirs: str, *extra: str) -> str:
        """Tree id of the clean three-way merge of two commits, else MergeConflict."""
        proc = self._git(
            full_name,
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            *extra,
            ours,
            theirs,
            ok=(0, 1),
        )
        lines = proc.stdout.decode().splitlines()
        if proc.returncode == 1:
            paths = [line for line in lines[1:] if line]
            raise MergeConflict(f"{theirs[:12]} conflicts with {ours[:12]}", paths)
        return lines[0]

    def _commit_tree(
        self, full_name: str, tree: str, parents: Sequence[str], message: str, env: dict[str, str]
    ) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._out(full_name, *args, "-F", "-", input=message.encode(), env=env)

    # -- repositories and refs --------------------------------------------------------------

    def exists(self, full_name: str) -> bool:
        try:
            return self.path(full_name).is_dir()
        except GitStoreError:
            return False

    def create_repo(
        self,
        full_name: str,
        files: dict[str, str],
        *,
        default_branch: str = "main",
        message: str = "Initial commit",
        author: Identity,
    ) -> str:
        path = self.path(full_name)
        with self.lock(full_name):
            if path.exists():
                raise GitStoreError(f"repository {full_name} already exists")
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["git", "init", "--quiet", "--bare", str(path)],
                env=git_env(),
                capture_output=True,
                check=True,
            )
            ref = self._branch_ref(default_branch)
            self._git(full_name, "symbolic-ref", "HEAD", ref)
            self._git(full_name, "config", "http.receivepack", "true")
            tree = self._write_tree(full_name, files)
            sha = self._commit_tree(full_name, tree, [], message, identity_env(author, author))
            self._move(full_name, default_branch, sha, None)
            return sha

    def _write_tree(self, full_name: str, files: Mapping[str, str]) -> str:
        """Build a tree in a throw-away index file outside the repository."""
        with tempfile.TemporaryDirectory(prefix="fakehub-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            lines = []
            for name, text in sorted(files.items()):
                blob = self._out(full_name, "hash-object", "-w", "--stdin", input=text.encode())
                lines.append(f"100644 {blob}\t{name.lstrip('/')}\n")
            self._git(
                full_name, "update-index", "--index-info", input="".join(lines).encode(), env=env
            )
            return self._out(full_name, "write-tree", env=env)

    def branches(self, full_name: str) -> dict[str, str]:
        listed = list_branches(self.path(full_name))
        if listed is not None:
            return listed
        out = self._out(
            full_name, "for-each-ref", "--format=%(objectname) %(refname:lstrip=2)", "refs/heads/"
        )
        return {name: sha for sha, _, name in (line.partition(" ") for line in out.splitlines())}

    def ref_sha(self, full_name: str, branch: str) -> str | None:
        ref = self._branch_ref(branch)
        path = self.path(full_name)
        if not path.is_dir():
            raise NotFound(f"no repository {full_name}")
        direct = read_ref(path, ref)
        if direct is None or isinstance(direct, str):
            return direct
        proc = self._git(
            full_name, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
            ok=(0, 1),
        )  # fmt: skip
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def set_branch(self, full_name: str, branch: str, sha: str) -> None:
        with self.lock(full_name):
            self._git(
                full_name, "update-ref", self._branch_ref(branch), self._commit(full_name, sha)
            )

    def delete_branch(self, full_name: str, branch: str) -> bool:
        with self.lock(full_name):
            old = self.ref_sha(full_name, branch)
            if old is None:
                return False
            self._git(full_name, "update-ref", "-d", self._branch_ref(branch), old)
            return True

    def create_branch(self, full_name: str, branch: str, sha: str) -> None:
        """A new branch at ``sha``; ``RefMoved`` when it exists already."""
        with self.lock(full_name):
            self._move(full_name, branch, self._commit(full_name, sha), None)

    def move_branch(self, full_name: str, branch: str, sha: str, *, force: bool) -> str:
        """Move an existing branch to ``sha`` (the Git refs API's update); its old tip. Not
        forced, the move must be a fast-forward (``NotFastForward``)."""
        with self.lock(full_name):
            old = self.ref_sha(full_name, branch)
            if old is None:
                raise NotFound(f"no branch {branch!r} in {full_name}")
            new = self._commit(full_name, sha)
            if not force and not self.is_ancestor(full_name, old, new):
                raise NotFastForward(f"{full_name}:{branch} {old[:12]} is not in {new[:12]}")
            self._move(full_name, branch, new, old)
            return old

    def first_parents(self, full_name: str, since: str, until: str) -> list[str]:
        """The commits on ``until``'s first-parent line after ``since``, oldest first."""
        out = self._out(full_name, "rev-list", "--first-parent", "--reverse", until, f"^{since}")
        return out.split()

    # -- history ----------------------------------------------------------------------------

    def commit_info(self, full_name: str, sha: str) -> CommitInfo:
        commit = self._commit(full_name, sha)
        info: CommitInfo = self._memo.get(
            ("info", full_name.lower(), commit), lambda: self._commit_info(full_name, commit)
        )
        return info

    def _commit_info(self, full_name: str, commit: str) -> CommitInfo:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B"
        out = self._git(full_name, "show", "-s", f"--format={fmt}", commit, "--").stdout.decode()
        sha_, tree, parents, an, ae, at, cn, ce, ct, body = out.split("\0", 9)
        return CommitInfo(
            sha=sha_,
            tree=tree,
            parents=parents.split(),
            message=body.rstrip("\n"),
            author_name=an,
            author_email=ae,
            author_date=iso_time(at),
            committer_name=cn,
            committer_email=ce,
            committer_date=iso_time(ct),
        )

    def is_ancestor(self, full_name: str, ancestor: str, descendant: str) -> bool:
        a, d = self._commit(full_name, ancestor), self._commit(full_name, descendant)
        answer: bool = self._memo.get(
            ("ancestor", full_name.lower(), a, d),
            lambda: (
                self._git(full_name, "merge-base", "--is-ancestor", a, d, ok=(0, 1)).returncode == 0
            ),
        )
        return answer

    def count_commits(self, full_name: str, base_sha: str, head_sha: str) -> int:
        """Commits reachable from ``head_sha`` and not from ``base_sha`` (a pull request's)."""
        base, head = self._commit(full_name, base_sha), self._commit(full_name, head_sha)
        count: int = self._memo.get(
            ("count", full_name.lower(), base, head),
            lambda: int(self._out(full_name, "rev-list", "--count", head, f"^{base}") or 0),
        )
        return count

    def conflicts(self, full_name: str, base_sha: str, head_sha: str) -> list[str]:
        base, head = self._commit(full_name, base_sha), self._commit(full_name, head_sha)

        def compute() -> tuple[str, ...]:
            try:
                self._merge_tree(full_name, base, head)
            except MergeConflict as exc:
                return tuple(exc.paths)
            return ()

        return list(self._memo.get(("conflicts", full_name.lower(), base, head), compute))

    def changed_files(self, full_name: str, base_sha: str, head_sha: str) -> list[dict[str, Any]]:
        base, head = self._commit(full_name, base_sha), self._commit(full_name, head_sha)
        files: list[dict[str, Any]] = self._memo.get(
            ("changed", full_name.lower(), base, head),
            lambda: self._changed_files(full_name, base, head),
        )
        return [dict(f) for f in files]

    def _changed_files(self, full_name: str, base: str, head: str) -> list[dict[str, Any]]:
        merge_base = self._out(full_name, "merge-base", base, head)
        diff = ("diff", "--no-renames", "--no-ext-diff", "-z")
        status_out = self._out(full_name, *diff, "--name-status", merge_base, head)
        numstat_out = self._out(full_name, *diff, "--numstat", merge_base, head)
        parts = status_out.split("\0")
        statuses = {parts[i + 1]: parts[i] for i in range(0, len(parts) - 1, 2)}
        names = {"A": "added", "D": "removed"}
        files = []
        for entry in filter(None, numstat_out.split("\0")):
            added, deleted, name = entry.split("\t", 2)
            plus = int(added) if added.isdigit() else 0
            minus = int(deleted) if deleted.isdigit() else 0
            files.append(
                {
                    "filename": name,
                    "status": names.get(statuses.get(name, "M")[:1], "modified"),
                    "additions": plus,
                    "deletions": minus,
                    "changes": plus + minus,
                }
            )
        return sorted(files, key=lambda f: f["filename"])

    # -- merging ----------------------------------------------------------------------------

    def merge(
        self,
        full_name: str,
        base_branch: str,
        head_sha: str,
        *,
        method: Literal["merge", "squash", "rebase"],
        title: str,
        message: str,
        committer: Identity,
        author: Identity | None = None,
    ) -> str:
        """Merge ``head_sha`` into ``base_branch`` as GitHub's merge button does; new base tip."""
        with self.lock(full_name):
            old = self.ref_sha(full_name, base_branch)
            if old is None:
                raise NotFound(f"no branch {base_branch!r} in {full_name}")
            head = self._commit(full_name, head_sha)
            text = f"{title}\n\n{message}" if message else title
            env = identity_env(author or committer, committer)
            if method == "merge":
                tree = self._merge_tree(full_name, old, head)
                new = self._commit_tree(full_name, tree, [old, head], text, env)
            elif method == "squash":
                tree = self._merge_tree(full_name, old, head)
                new = self._commit_tree(full_name, tree, [old], text, env)
            elif method == "rebase":
                new = self._replay(full_name, old, head, committer)
            else:
                raise GitStoreError(f"unknown merge method {method!r}")
            self._move(full_name, base_branch, new, old)
            return new

    def merge_commit(
        self, full_name: str, base_sha: str, head_sha: str, *, message: str, committer: Identity
    ) -> str:
        """A merge commit of ``base_sha`` and ``head_sha`` (parents in that order), on no
        branch; MergeConflict when they conflict (a merge queue's group, say)."""
        with self.lock(full_name):
            base, head = self._commit(full_name, base_sha), self._commit(full_name, head_sha)
            tree = self._merge_tree(full_name, base, head)
            env = identity_env(committer, committer)
            return self._commit_tree(full_name, tree, [base, head], message, env)

    def fast_forward(self, full_name: str, branch: str, new: str, old: str) -> None:
        """Move ``branch`` from exactly ``old`` to ``new``; RefMoved if it is not at ``old``."""
        with self.lock(full_name):
            self._move(full_name, branch, self._commit(full_name, new), old)

    def _replay(self, full_name: str, onto: str, head: str, committer: Identity) -> str:
        """Cherry-pick every non-merge commit of ``head`` missing from ``onto``, in order.

        git 2.39's merge-tree has no ``--merge-base``, so each pick merges ``C`` with a
        throw-away commit that has ``onto``'s tree and ``C``'s parent as its parent: their merge
        base is then ``C^`` and the result is exactly the cherry-pick's tree.
        """
        commits = self._out(
            full_name, "rev-list", "--reverse", "--topo-order", "--no-merges", head, f"^{onto}"
        ).split()
        tip = onto
        for commit in commits:
            info = self.commit_info(full_name, commit)
            tip_tree = self._out(full_name, "rev-parse", f"{tip}^{{tree}}")
            scratch_env = identity_env(committer, committer)
            scratch = self._commit_tree(full_name, tip_tree, info.parents, "scratch", scratch_env)
            extra = () if info.parents else ("--allow-unrelated-histories",)
            tree = self._merge_tree(full_name, scratch, commit, *extra)
            if tree == tip_tree:
                continue  # already applied upstream; git rebase drops it too
            env = identity_env(Identity(info.author_name, info.author_email), committer)
            author_epoch = self._out(full_name, "show", "-s", "--format=%at", commit, "--")
            env["GIT_AUTHOR_DATE"] = f"{author_epoch} +0000"
            tip = self._commit_tree(full_name, tree, [tip], info.message, env)
        return tip

    def update_branch(
        self, full_name: str, head_branch: str, base_branch: str, *, committer: Identity
    ) -> str:
        """Merge the base tip into ``head_branch`` (GitHub's "Update branch"); new head sha."""
        with self.lock(full_name):
            head = self.ref_sha(full_name, head_branch)
            base = self.ref_sha(full_name, base_branch)
            if head is None or base is None:
                raise NotFound(f"no branch {head_branch!r} or {base_branch!r} in {full_name}")
            if self.is_ancestor(full_name, base, head):
                return head
            tree = self._merge_tree(full_name, head, base)
            text = f"Merge branch '{base_branch}' into {head_branch}"
            new = self._commit_tree(
                full_name, tree, [head, base], text, identity_env(committer, committer)
            )
            self._move(full_name, head_branch, new, head)
            return new

    def merge_into(
        self, full_name: str, branch: str, head_sha: str, *, message: str, committer: Identity
    ) -> str | None:
        """Merge ``head_sha`` into ``branch`` with a merge commit (the Merges API); the new tip,
        or None when the branch contains it already. ``MergeConflict`` on conflicts."""
        with self.lock(full_name):
            old = self.ref_sha(full_name, branch)
            if old is None:
                raise NotFound(f"no branch {branch!r} in {full_name}")
            head = self._commit(full_name, head_sha)
            if self.is_ancestor(full_name, head, old):
                return None
            tree = self._merge_tree(full_name, old, head)
            env = identity_env(committer, committer)
            new = self._commit_tree(full_name, tree, [old, head], message, env)
            self._move(full_name, branch, new, old)
            return new

    # -- contents ---------------------------------------------------------------------------

    def checkout(self, full_name: str, sha: str, dest: Path) -> None:
        """Write the tree of ``sha`` into ``dest`` (no ``.git``).

        Git writes the files itself (a private index, then ``checkout-index``): extracting an
        archive in Python held fakehub's GIL for every file, slowing its API for CI runs.
        """
        commit = self._commit(full_name, sha)
        dest = Path(dest).absolute()
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="fakehub-index-") as scratch:
            env = {
                "GIT_INDEX_FILE": str(Path(scratch) / "index"),
                "GIT_DIR": str(self.path(full_name)),
                "GIT_WORK_TREE": str(dest),
            }
            self._git(full_name, "read-tree", commit, env=env)
            self._git(full_name, "checkout-index", "--all", "--force", env=env)

    def read_file(self, full_name: str, sha_or_branch: str, path: str) -> bytes | None:
        sha = self._resolve(full_name, sha_or_branch)
        if sha is None:
            return None
        spec = f"{sha}:{path.lstrip('/')}"
        kind = self._git(full_name, "cat-file", "-t", spec, ok=(0, 128))
        if kind.returncode != 0 or kind.stdout.strip() != b"blob":
            return None
        return self._git(full_name, "cat-file", "blob", spec).stdout
