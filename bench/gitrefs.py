"""Reading refs by hand (fakehub/gitrefs.py, runner/git.py) against GitPython, per call.

    python bench/gitrefs.py [--branches 200] [--calls 2000] [--runs 9] [--json FILE]

Makes a bare repository with one commit and ``--branches`` branches, half of them in
``packed-refs`` and half loose (one packed branch also moved by a loose file, which wins), then
times each way of answering the two questions our code asks of a repository's files:

- the tip of one branch (``tip_loose_us``, ``tip_packed_us``: microseconds per call):
  ``hand`` is ``fakehub.gitrefs.read_ref`` (``runner.git.RepoMirror._ref_sha`` reads the same
  files the same way); ``gitpython_files`` is GitPython's own file reader,
  ``SymbolicReference.dereference_recursive``, on a ``Repo`` kept open; ``gitpython_new_repo``
  the same with a ``Repo`` opened per call (what a reader that keeps no handle pays);
  ``gitpython_commit`` is the usual spelling, ``repo.commit(ref).hexsha``, which asks a
  ``git cat-file`` process it keeps; ``git_rev_parse`` is one ``git rev-parse`` process, what
  the shortcuts replaced;
- every branch and its tip (``list_us``): ``hand`` is ``fakehub.gitrefs.list_branches``;
  ``gitpython_files`` walks ``Repo.heads`` and reads each with ``dereference_recursive``;
  ``gitpython_commit`` is ``{h.name: h.commit.hexsha for h in repo.heads}``.

GitPython is not a dependency of the project (this measurement is why: docs/architecture.md,
"Dependencies"); install it into the virtualenv to run this.

Also ``import_ms``: the extra start-up time of a process that imports ``git`` (median of
``--runs`` fresh interpreters, each minus an interpreter that imports nothing).

Each figure is the median over ``--runs`` rounds of ``--calls`` calls, the ways interleaved in
every round so that they share the machine's load. Every way's answers are checked equal first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakehub.gitrefs import list_branches, read_ref  # noqa: E402

try:
    import git
    from git.refs.symbolic import SymbolicReference
except ImportError:  # not a dependency of ours: docs/architecture.md, "Dependencies"
    sys.exit("bench/gitrefs.py measures GitPython: .venv/bin/pip install GitPython first")

GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def make_repo(root: Path, branches: int) -> Path:
    work, bare = root / "work", root / "repo.git"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "README").write_text("bench\n")
    _git(work, "add", "README")
    _git(work, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "one")
    (work / "README").write_text("bench, two\n")
    _git(work, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "two")
    _git(work, "clone", "-q", "--bare", str(work), str(bare))
    for i in range(branches // 2):
        _git(bare, "branch", f"packed/{i}", "main~1")
    _git(bare, "pack-refs", "--all")
    for i in range(branches - branches // 2):
        _git(bare, "branch", f"loose/{i}", "main")
    _git(bare, "branch", "-f", "packed/0", "main")  # a loose file over its packed line
    return bare


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def _import_ms(runs: int) -> float:
    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    extra = [(once("import git") - once("pass")) * 1000 for _ in range(runs)]
    return round(statistics.median(extra), 1)


def measure(branches: int, calls: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = make_repo(Path(tmp), branches)
        repo = git.Repo(path)
        loose, packed = "refs/heads/loose/1", "refs/heads/packed/1"

        def files(ref: str) -> str:
            return SymbolicReference.dereference_recursive(repo, ref)

        def new_repo(ref: str) -> str:
            return SymbolicReference.dereference_recursive(git.Repo(path), ref)

        def commit(ref: str) -> str:
            return repo.commit(ref).hexsha

        def rev_parse(ref: str) -> str:
            return _git(path, "rev-parse", "--verify", "--quiet", ref)

        def list_files() -> dict[str, str]:
            return {h.name: files(h.path) for h in repo.heads}

        def list_commit() -> dict[str, str]:
            return {h.name: h.commit.hexsha for h in repo.heads}

        tips: dict[str, Callable[[str], object]] = {
            "hand": lambda ref: read_ref(path, ref),
            "gitpython_files": files,
            "gitpython_new_repo": new_repo,
            "gitpython_commit": commit,
            "git_rev_parse": rev_parse,
        }
        lists: dict[str, Callable[[], object]] = {
            "hand": lambda: list_branches(path),
            "gitpython_files": list_files,
            "gitpython_commit": list_commit,
        }
        for ref in (loose, packed, "refs/heads/packed/0"):
            answers = {name: fn(ref) for name, fn in tips.items()}
            assert len(set(answers.values())) == 1, answers
        listed = {name: fn() for name, fn in lists.items()}
        assert all(v == listed["hand"] for v in listed.values()), "listings differ"
        assert isinstance(listed["hand"], dict)
        assert len(listed["hand"]) == branches + 1

        samples: dict[str, list[float]] = {}
        slow = {"git_rev_parse": max(1, calls // 50), "gitpython_new_repo": max(1, calls // 10)}
        for _ in range(runs):
            for label, ref in (("tip_loose_us", loose), ("tip_packed_us", packed)):
                for name, fn in tips.items():
                    n = slow.get(name, calls)
                    key = f"{label}.{name}"
                    samples.setdefault(key, []).append(
                        _per_call_us(lambda fn=fn, ref=ref: fn(ref), n)
                    )
            for name, fn in lists.items():
                n = max(1, calls // 20)
                samples.setdefault(f"list_us.{name}", []).append(_per_call_us(fn, n))
        repo.close()

    result: dict[str, Any] = {"branches": branches, "calls": calls, "runs": runs}
    for key, values in samples.items():
        group, name = key.split(".")
        result.setdefault(group, {})[name] = round(statistics.median(values), 1)
    result["import_ms"] = _import_ms(runs)
    result["gitpython"] = git.__version__
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.branches, args.calls, args.runs)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
