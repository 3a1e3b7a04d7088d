"""The runner's git adapter: one bare mirror per repository, one worktree per task.

The only runner module that runs git. The installation token never reaches a remote URL, a
config file, argv or the disk: each network command gets it through the environment of that git
process only (``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_0``/``GIT_CONFIG_VALUE_0``), as an
``Authorization`` header scoped to the repository's own URL (``http.<url>.extraHeader``, as
GitHub's actions/checkout sends its token, though that keeps it in ``.git/config``). It stands
in for a credential helper with the same guarantees (a redirect elsewhere does not carry it),
and git sends it with its first request instead of first trying without and getting a 401 (a
round trip on every fetch and push). The agent never runs with it, and error messages are
scrubbed of it. Nothing reads the user's or the system's git configuration, so no credential
helper or store is asked or told anything.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class GitError(Exception):
    """A git command failed; the message holds the command and the tail of its stderr."""


class _MirrorState:
    """Shared by every RepoMirror of one path: the lock and fetch sequence numbers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Per fetch scope ("*" for every branch, else one branch): fetches begun (one at a
        # time, under the lock) and the number of the last one that succeeded.
        self.started: dict[str, int] = {}
        self.finished: dict[str, int] = {}
        self.url: str | None = None  # origin's URL as last configured
        self.fetched = False  # a fetch brought objects since maintenance last ran
        self.maintained_at = float("-inf")  # time.monotonic() of the last maintenance


_states: dict[Path, _MirrorState] = {}
_states_guard = threading.Lock()


def _state_for(path: Path) -> _MirrorState:
    with _states_guard:
        return _states.setdefault(path.resolve(), _MirrorState())


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MAINTAIN_EVERY_S = 60.0


def _basic(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def _auth_env(url: str, token: str) -> dict[str, str]:
    """The token for requests to ``url`` (and below it) only, as GitHub takes it over HTTPS."""
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {_basic(token)}",
    }


def worktree_admin_dir(worktree: Path) -> Path:
    """A worktree's private git directory (its index and HEAD), named by its ``.git`` file;
    for a repository's own checkout, its ``.git`` folder."""
    try:
        gitdir = Path((worktree / ".git").read_text().strip().removeprefix("gitdir: "))
    except (OSError, UnicodeDecodeError):
        return worktree / ".git"
    return gitdir if gitdir.is_absolute() else worktree / gitdir


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ASKPASS="",
        SSH_ASKPASS="",
        LC_ALL="C",
    )
    env.update(extra or {})
    return env


def _run(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
    ok: tuple[int, ...] = (0,),
    input: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    cmd = ["git", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=git_env(env), input=input, capture_output=True, text=True,
            check=False, timeout=timeout,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(_scrub(f"{' '.join(cmd)} in {cwd}: {exc}", secrets)) from None
    if proc.returncode not in ok:
        tail = proc.stderr.strip()[-2000:]
        message = f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}: {tail}"
        raise GitError(_scrub(message, secrets))
    return proc


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            text = text.replace(_basic(secret), "***")
    return text


class RepoMirror:
    """A bare mirror of one repository, shared by every worker; tasks work in worktrees."""

    def __init__(self, cache_dir: Path, full_name: str, clone_url: str) -> None:
        owner, _, name = full_name.partition("/")
        if not owner or not name or any(p in {"", ".", ".."} or "/" in p for p in (owner, name)):
            raise ValueError(f"invalid repository name {full_name!r}")
        if "@" in clone_url.partition("://")[2].partition("/")[0]:
            raise ValueError("clone_url must not carry credentials")
        self.full_name = full_name
        self.clone_url = clone_url
        self.path = Path(cache_dir) / "mirrors" / owner / f"{name}.git"
        self._state = _state_for(self.path)
        self._lock = self._state.lock

    def _git(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return _run(args, self.path, **kwargs)  # type: ignore[arg-type]

    def _init(self) -> None:
        if (self.path / "HEAD").exists():
            if self._state.url != self.clone_url:
                self._git("remote", "set-url", "origin", self.clone_url)
                self._state.url = self.clone_url
            return
        self.path.mkdir(parents=True, exist_ok=True)
        _run(["init", "--quiet", "--bare", str(self.path)], self.path)
        self._git("remote", "add", "origin", self.clone_url)
        self._git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        self._state.url = self.clone_url

    def fetch(self, token: str, *, branch: str | None = None, want: str | None = None) -> None:
        """Bring ``refs/remotes/origin/*`` up to date (creates the mirror the first time).

        With ``branch``, only ``origin/<branch>``: a task starting from the base needs nothing
        else, and one branch is far less to negotiate than every task branch of the repository.
        ``want``: the commit ``origin/<branch>`` is wanted at; when a fetch that was running
        (a prefetch) brought it, there is nothing to do.
        """
        state = self._state
        scope = branch or "*"
        asked_after = state.started.get(scope, 0)
        with self._lock:
            if state.finished.get(scope, 0) > asked_after and state.url == self.clone_url:
                return  # a fetch from our URL began after we asked and finished: fresh enough
            if want is not None and branch is not None and self.remote_sha(branch) == want:
                return
            number = state.started[scope] = state.started.get(scope, 0) + 1
            self._init()
            if branch is None:
                where: tuple[str, ...] = ("--prune", "origin")
            else:
                where = ("origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
            # No automatic maintenance inside the fetch: it runs after the job (``maintain``).
            self._git(
                "fetch", "--no-tags", "--quiet", "--no-auto-maintenance", *where,
                env=_auth_env(self.clone_url, token), secrets=[token],
            )  # fmt: skip
            state.finished[scope] = number
            state.fetched = True

    def add_worktree(
        self, path: Path, branch: str, base: str = "main", *, from_remote_branch: bool = False
    ) -> Path:
        """A clean worktree at ``path`` on a branch ``branch`` reset to ``origin/<base>``.

        ``from_remote_branch=True`` starts from ``origin/<branch>`` instead when it exists, to
        continue work pushed earlier.
        """
        path = Path(path).absolute()
        with self._lock:
            self._drop_worktree(path)
            start = f"refs/remotes/origin/{base}"
            if from_remote_branch and self._has_ref(f"refs/remotes/origin/{branch}"):
                start = f"refs/remotes/origin/{branch}"
            if not self._has_ref(start):
                raise GitError(f"{self.full_name}: no {start} (fetch first?)")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._git("worktree", "add", "--quiet", "--no-track", "-B", branch, str(path), start)
        return path

    def maintain(self) -> None:
        """git's automatic maintenance (a gc once loose objects pile up), which fetches skip: it
        runs after a job, off the path from a claim to the next agent's start, once a fetch has
        happened since it last ran (as it did inside fetches), and at most once a minute (it
        only counts objects unless thousands piled up). It counts every loose object, the
        jobs' own commits too, so those are collected at a later base move."""
        with self._lock:
            now = time.monotonic()
            if now - self._state.maintained_at < MAINTAIN_EVERY_S:
                return
            if self._state.fetched and (self.path / "HEAD").exists():
                self._git("maintenance", "run", "--auto", "--quiet")
                self._state.fetched = False
                self._state.maintained_at = now

    def remote_sha(self, branch: str) -> str | None:
        """The commit ``refs/remotes/origin/<branch>`` points at in the mirror, if any."""
        if not self.path.exists():
            return None
        return self._ref_sha(f"refs/remotes/origin/{branch}")

    def _ref_sha(self, ref: str) -> str | None:
        """What ``ref`` points at, read from the ref files as git does (loose, then
        ``packed-refs``); git itself answers anything unusual. On the path to an agent's start,
        where each git process counts."""
        if ".." in ref or not ref.startswith("refs/"):
            return None  # not a valid ref name (git refuses ".." too): never a path outside
        try:
            loose = (self.path / ref).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            loose = None
        except OSError:
            loose = ""
        if loose is not None:
            return loose if _SHA.fullmatch(loose) else self._rev_parse(ref)
        try:
            packed = (self.path / "packed-refs").read_text()
        except FileNotFoundError:
            return None
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha if _SHA.fullmatch(sha) else self._rev_parse(ref)
        return None

    def _rev_parse(self, ref: str) -> str | None:
        proc = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1, 128))
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def _has_ref(self, ref: str) -> bool:
        return self._ref_sha(ref) is not None

    def _drop_worktree(self, path: Path) -> None:
        if (path / ".git").exists():
            self._git("worktree", "remove", "--force", "--force", str(path), ok=(0, 128))
        if path.exists():
            shutil.rmtree(path)
        self._git("worktree", "prune")

    def commit_all(
        self, worktree: Path, message: str, *, author_name: str, author_email: str
    ) -> str | None:
        """Stage everything and commit; the new HEAD sha, or None when nothing changed."""
        _run(["add", "--all"], worktree)
        if _run(["diff", "--cached", "--quiet"], worktree, ok=(0, 1)).returncode == 0:
            return None
        identity = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }
        _run(
            ["commit", "--quiet", "--no-verify", "--no-gpg-sign", "--cleanup=strip", "-F", "-"],
            worktree, env=identity, input=message,
        )  # fmt: skip
        return self.head_sha(worktree)

    def head_sha(self, worktree: Path) -> str:
        return _run(["rev-parse", "HEAD"], worktree).stdout.strip()

    def push(self, worktree: Path, branch: str, token: str, *, force: bool = False) -> None:
        """Push HEAD to ``refs/heads/<branch>`` on origin."""
        args = ["push", "--quiet", "--no-verify", "origin", f"HEAD:refs/heads/{branch}"]
        if force:
            args.insert(1, "--force")
        _run(args, worktree, env=_auth_env(self.clone_url, token), secrets=[token])

    def add_detached_worktree(self, path: Path, ref: str) -> Path:
        """A clean worktree at ``path`` with a detached HEAD at ``ref`` (e.g.
        ``refs/remotes/origin/<branch>``): no local branch, so no other worktree's is taken."""
        path = Path(path).absolute()
        with self._lock:
            self._drop_worktree(path)
            if not self._has_ref(ref):
                raise GitError(f"{self.full_name}: no {ref} (fetch first?)")
            path.parent.mkdir(parents=True, exist_ok=True)
            self._git("worktree", "add", "--quiet", "--detach", str(path), ref)
        return path

    def foreign_commits(self, base: str, head: str, *, author_name: str) -> list[str]:
        """The commits of ``base..head`` (merges aside: a rebase drops them) whose author is
        not ``author_name``, as ``<short sha> <author> <subject>``."""
        out = self._git("log", "--no-merges", "--format=%h%x00%an%x00%s", f"{base}..{head}")
        found = []
        for line in out.stdout.splitlines():
            sha, name, subject = (line.split("\0") + ["", ""])[:3]
            if name != author_name:
                found.append(f"{sha} by {name}: {subject}")
        return found

    def rebase(
        self, worktree: Path, onto: str, *, committer_name: str, committer_email: str
    ) -> list[str]:
        """Rebase the worktree's HEAD onto ``onto``; the conflicted files (the rebase is then
        aborted and the worktree left as it was), or [] when it applied cleanly."""
        identity = {"GIT_COMMITTER_NAME": committer_name, "GIT_COMMITTER_EMAIL": committer_email}
        proc = _run(["rebase", "--no-autostash", onto], worktree, env=identity, ok=(0, 1))
        if proc.returncode == 0:
            return []
        files = _run(["diff", "--name-only", "--diff-filter=U"], worktree).stdout.split()
        _run(["rebase", "--abort"], worktree)
        if not files:  # not a conflict: a failure git itself explains
            raise GitError(f"git rebase {onto} failed in {worktree}: {proc.stderr.strip()[-2000:]}")
        return sorted(files)

    def rebase_step(
        self, worktree: Path, onto: str | None, *, committer_name: str, committer_email: str
    ) -> list[str]:
        """Start a rebase of the worktree's HEAD onto ``onto``, or (``onto`` None) continue the
        one under way; it stops at a conflict and is left there (unlike ``rebase``): the
        conflicted files, or [] when the rebase is done. A commit the resolution left empty is
        skipped."""
        identity = {"GIT_COMMITTER_NAME": committer_name, "GIT_COMMITTER_EMAIL": committer_email}
        if onto is not None:
            args = ["rebase", "--no-autostash", onto]
        elif not _run(["diff", "--cached", "--quiet"], worktree, ok=(0, 1)).returncode:
            args = ["rebase", "--skip"]
        else:
            args = ["-c", "core.editor=true", "rebase", "--continue"]
        proc = _run(args, worktree, env=identity, ok=(0, 1))
        if proc.returncode == 0:
            return []
        files = _run(["diff", "--name-only", "--diff-filter=U"], worktree).stdout.split()
        if not files:  # not a conflict: a failure git itself explains
            raise GitError(f"git {' '.join(args)} failed in {worktree}: {proc.stderr[-2000:]}")
        return sorted(files)

    def stage(self, worktree: Path, files: Sequence[str]) -> list[str]:
        """``git add`` the files (a deleted one too); the files still unmerged after it. When
        none is, whatever else changed in the worktree is discarded: only the resolution of
        ``files`` goes into the commit."""
        _run(["add", "--all", "--", *files], worktree)
        unmerged = _run(["diff", "--name-only", "--diff-filter=U"], worktree).stdout.split()
        if not unmerged:
            _run(["checkout", "--", "."], worktree)
            _run(["clean", "-fdq"], worktree)
        return unmerged

    def log_touching(self, base: str, head: str, files: Sequence[str], limit: int = 30) -> str:
        """``<short sha> <subject>`` of the commits of ``base..head`` that touched ``files``."""
        args = ["log", "--no-merges", f"-{limit}", "--format=%h %s", f"{base}..{head}", "--"]
        return self._git(*args, *files).stdout.strip()

    def diff_since_fork(self, base: str, head: str, limit: int = 40_000) -> str:
        """What ``head`` changed since it forked from ``base`` (``git diff base...head``)."""
        out = self._git("diff", f"{base}...{head}").stdout
        return out if len(out) <= limit else out[:limit] + "\n[... trimmed]"

    def changed_files(self, base: str, head: str) -> list[str]:
        """The paths ``head`` changed since it forked from ``base`` (``git diff --name-only
        base...head``)."""
        return [
            p
            for p in self._git("diff", "--name-only", "-z", f"{base}...{head}").stdout.split("\0")
            if p
        ]

    def push_with_lease(self, worktree: Path, branch: str, token: str, expected: str) -> bool:
        """Force-push HEAD to ``refs/heads/<branch>`` only if it is still at ``expected``
        (``--force-with-lease``); False when origin refused because the branch moved."""
        ref = f"refs/heads/{branch}"
        args = ["push", "--quiet", "--no-verify", "--porcelain",
                f"--force-with-lease={ref}:{expected}", "origin", f"HEAD:{ref}"]  # fmt: skip
        env = _auth_env(self.clone_url, token)
        proc = _run(args, worktree, env=env, secrets=[token], ok=(0, 1))
        if proc.returncode == 0:
            return True
        said = proc.stdout + proc.stderr
        if "stale info" in said or "fetch first" in said or "rejected" in said:
            return False
        raise GitError(
            _scrub(f"git push {ref} failed in {worktree}: {said.strip()[-2000:]}", [token])
        )

    def remove_worktree(self, path: Path) -> None:
        with self._lock:
            self._drop_worktree(Path(path).absolute())

    # -- warm worktrees (used by runner.workspace) -------------------------------------------

    def start_sha(
        self, branch: str, base: str = "main", *, from_remote_branch: bool = False
    ) -> str:
        """The commit a task starts from: ``origin/<branch>`` when continuing and it exists,
        else ``origin/<base>``."""
        refs = [f"refs/remotes/origin/{branch}"] if from_remote_branch else []
        for ref in [*refs, f"refs/remotes/origin/{base}"]:
            if sha := self._ref_sha(ref):
                return sha
        raise GitError(f"{self.full_name}: no refs/remotes/origin/{base} (fetch first?)")

    def owns_worktree(self, path: Path) -> bool:
        """True when ``path`` is a worktree of this mirror (its ``.git`` file points here).

        Checked before any reset or clean, so a worktree whose ``.git`` an agent deleted can
        never make git fall through to an enclosing repository.
        """
        dotgit = Path(path) / ".git"
        try:
            text = dotgit.read_text().strip() if dotgit.is_file() else ""
        except OSError:
            return False
        if not text.startswith("gitdir: "):
            return False
        gitdir = Path(text.removeprefix("gitdir: "))
        return gitdir.parent.resolve() == (self.path / "worktrees").resolve() and gitdir.is_dir()

    def scrub_worktree(self, path: Path) -> None:
        """Delete untracked and ignored files. Touches only this worktree: safe during a fetch."""
        path = Path(path).absolute()
        if not self.owns_worktree(path):
            raise GitError(f"{path} is not a worktree of {self.full_name}")
        self._drop_stale_index_lock(path)
        _run(["clean", "-ffdxq"], path)

    def switch_worktree(self, path: Path, branch: str, sha: str) -> None:
        """Check out ``branch`` reset to ``sha`` in a worktree, discarding tracked changes.

        Only files that differ are rewritten; run ``scrub_worktree`` first to drop untracked
        files. A stale worktree holding ``branch`` is detached first.
        """
        path = Path(path).absolute()
        if not self.owns_worktree(path):
            raise GitError(f"{path} is not a worktree of {self.full_name}")
        self._drop_stale_index_lock(path)
        with self._lock:
            self._detach_others(branch, keep=path)
            _run(["checkout", "--quiet", "--force", "--no-track", "-B", branch, sha], path)

    def reset_worktree(
        self, path: Path, branch: str, base: str = "main", *, from_remote_branch: bool = False
    ) -> str:
        """Reuse an existing worktree: clean it and check out ``branch`` reset to its start.

        The start is chosen as in ``add_worktree``. Untracked and ignored files are deleted,
        tracked files are restored. Returns the new HEAD sha.
        """
        self.scrub_worktree(path)
        sha = self.start_sha(branch, base, from_remote_branch=from_remote_branch)
        self.switch_worktree(path, branch, sha)
        return sha

    def detach_worktree(self, path: Path, sha: str) -> None:
        """Check out ``sha`` with a detached HEAD in a worktree, discarding tracked changes."""
        path = Path(path).absolute()
        if not self.owns_worktree(path):
            raise GitError(f"{path} is not a worktree of {self.full_name}")
        _run(["checkout", "--quiet", "--force", "--detach", sha], path)

    def has_commit(self, sha: str) -> bool:
        """Whether the mirror holds the commit ``sha``."""
        if not _SHA.fullmatch(sha) or not (self.path / "HEAD").exists():
            return False
        proc = self._git("cat-file", "-e", f"{sha}^{{commit}}", ok=(0, 1, 128))
        return proc.returncode == 0

    def clean_worktree(self, path: Path) -> None:
        """Discard every change in the worktree and detach HEAD (the branch stays)."""
        path = Path(path).absolute()
        if not self.owns_worktree(path):
            raise GitError(f"{path} is not a worktree of {self.full_name}")
        self._drop_stale_index_lock(path)
        _run(["checkout", "--quiet", "--force", "--detach"], path)
        _run(["clean", "-ffdxq"], path)

    def delete_branch(self, branch: str) -> bool:
        """Delete the local ``refs/heads/<branch>``; False when it did not exist."""
        with self._lock:
            if not self._has_ref(f"refs/heads/{branch}"):
                return False
            self._detach_others(branch, keep=None)
            self._git("branch", "--quiet", "-D", branch)
            return True

    def free_branch(self, branch: str) -> None:
        """Detach ``branch`` from whichever worktree holds it, so another may check it out."""
        with self._lock:
            if (self.path / "HEAD").exists():
                self._detach_others(branch, keep=None)

    def worktrees(self) -> dict[Path, str | None]:
        """Every worktree of the mirror (not the mirror itself): path -> checked-out branch."""
        if not (self.path / "HEAD").exists():
            return {}
        return {path: branch for path, branch, _ in self._worktree_list()}

    def prune_worktrees(self) -> None:
        with self._lock:
            if (self.path / "HEAD").exists():
                self._git("worktree", "prune")

    def destroy(self) -> None:
        """Delete the mirror from disk (the next ``fetch`` creates it again)."""
        with self._lock:
            if self.path.exists():
                shutil.rmtree(self.path)

    def _worktree_list(self) -> list[tuple[Path, str | None, bool]]:
        """(path, branch, prunable) of each linked worktree, from ``git worktree list``."""
        out = self._git("worktree", "list", "--porcelain", "-z").stdout
        entries: list[tuple[Path, str | None, bool]] = []
        for block in out.split("\0\0"):
            fields = [f for f in block.split("\0") if f]
            if not fields or not fields[0].startswith("worktree ") or "bare" in fields:
                continue
            path = Path(fields[0].removeprefix("worktree "))
            branch = next(
                (f.removeprefix("branch refs/heads/") for f in fields if f.startswith("branch ")),
                None,
            )
            entries.append((path, branch, any(f.startswith("prunable") for f in fields)))
        return entries

    def _detach_others(self, branch: str, keep: Path | None) -> None:
        """Free ``branch`` from any other worktree holding it (caller holds the lock).

        Only HEAD is rewritten (``update-ref --no-deref``): the other worktree's files and
        index are not touched, so this is safe even while that worktree is being cleaned.
        """
        want = f"ref: refs/heads/{branch}"
        admin = self.path / "worktrees"
        heads = [d / "HEAD" for d in admin.iterdir()] if admin.is_dir() else []
        if not any(h.is_file() and h.read_text().strip() == want for h in heads):
            return  # nobody holds it: skip the slower `git worktree list`
        for path, held, prunable in self._worktree_list():
            if held != branch or (keep is not None and path.resolve() == keep.resolve()):
                continue
            if prunable or not self.owns_worktree(path):
                self._git("worktree", "prune")
                continue
            sha = _run(["rev-parse", "HEAD"], path).stdout.strip()
            _run(["update-ref", "--no-deref", "HEAD", sha], path)

    def _drop_stale_index_lock(self, path: Path) -> None:
        """Remove an ``index.lock`` left by a killed agent (the caller owns the worktree)."""
        gitdir = Path((path / ".git").read_text().strip().removeprefix("gitdir: "))
        (gitdir / "index.lock").unlink(missing_ok=True)
