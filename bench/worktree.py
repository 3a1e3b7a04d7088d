"""Benchmark a task's workspace preparation against a full clone, on a large repository.

    python bench/worktree.py --json FILE [--files 20000] [--commits 500] [--runs 9]
                             [--clone-runs 5]

Writes a repository of ``--files`` files and ``--commits`` commits with ``git fast-import``,
serves it over git smart HTTP (fakehub's ``GitStore`` + ``create_git_app`` under uvicorn on
127.0.0.1) and measures:

- ``clone_s``: a full ``git clone`` over HTTP (median of ``--clone-runs``, alternating with
  the prepares below so both see the same background load);
- ``worktree_s``: ``Workspaces.prepare`` in steady state, median of ``--runs``: the mirror is
  already fetched and a warm worktree is in the pool; before each run a new commit lands on
  main, so each run includes an incremental fetch, and each run is a different task branch
  (the previous task left modified and untracked files behind, which the reset removes);
- ``extra_disk_mb``: disk used by one warm worktree (its files plus its private git directory).

Prints and writes ``{files, commits, worktree_s, clone_s, ratio_vs_clone, extra_disk_mb, ...}``.
Target: ``ratio_vs_clone`` <= 0.2.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402

from fakehub.githttp import create_git_app  # noqa: E402
from fakehub.gitstore import GitStore, git_env  # noqa: E402
from runner.disk_budget import disk_bytes  # noqa: E402
from runner.git import worktree_admin_dir  # noqa: E402
from runner.workspace import Workspaces  # noqa: E402

REPO = "bench/big"
TOKEN = "ghs_benchWorktreeToken"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho".split()


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def _content(rng: random.Random, n: int, version: int) -> bytes:
    lines = [f"# file {n} version {version}"]
    lines += [" ".join(rng.choices(WORDS, k=8)) for _ in range(rng.randrange(3, 12))]
    return ("\n".join(lines) + "\n").encode()


def _path(n: int) -> str:
    return f"src/pkg{n // 1000:02d}/mod{n // 100 % 10}/file{n:05d}.txt"


def _commit_header(ref: str, when: int, message: str) -> bytes:
    who = f"Bench <bench@example.com> {when} +0000"
    return f"commit {ref}\nauthor {who}\ncommitter {who}\n".encode() + _data(message.encode())


def generate(repo_dir: Path, files: int, commits: int, seed: int = 7) -> None:
    """A bare repository with ``files`` files on main and ``commits`` commits, via fast-import."""
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo_dir)], env=git_env(), check=True)
    for key, value in (("http.receivepack", "true"), ("gc.auto", "0")):
        subprocess.run(["git", "config", key, value], cwd=repo_dir, env=git_env(), check=True)
    subprocess.run(
        ["git", "symbolic-ref", "HEAD", "refs/heads/main"], cwd=repo_dir, env=git_env(), check=True
    )
    rng = random.Random(seed)
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet"], cwd=repo_dir, env=git_env(), stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    out = proc.stdin
    when = 1_700_000_000
    out.write(_commit_header("refs/heads/main", when, "Initial import"))
    for n in range(files):
        out.write(f"M 100644 inline {_path(n)}\n".encode() + _data(_content(rng, n, 0)))
    out.write(b"\n")
    for c in range(1, commits):
        out.write(_commit_header("refs/heads/main", when + c * 60, f"Change {c}"))
        for n in rng.sample(range(files), 5):
            out.write(f"M 100644 inline {_path(n)}\n".encode() + _data(_content(rng, n, c)))
        out.write(b"\n")
    out.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")


def advance_main(repo_dir: Path, files: int, step: int) -> None:
    """One more commit on main touching three files (what a merged pull request does)."""
    tip = subprocess.run(
        ["git", "rev-parse", "refs/heads/main"], cwd=repo_dir, env=git_env(),
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    rng = random.Random(step)
    stream = _commit_header("refs/heads/main", int(time.time()), f"Merged task {step}")
    stream += f"from {tip}\n".encode()
    for n in rng.sample(range(files), 3):
        stream += f"M 100644 inline {_path(n)}\n".encode() + _data(_content(rng, n, 10_000 + step))
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=repo_dir, env=git_env(), input=stream + b"\n",
        check=True,
    )  # fmt: skip


@contextmanager
def serve(store: GitStore) -> Iterator[str]:
    """fakehub's git smart HTTP for ``store`` on a free 127.0.0.1 port; yields the base URL."""

    def authorize(full_name: str, user: str | None, password: str | None, write: bool) -> bool:
        return user == "x-access-token" and password == TOKEN

    app = create_git_app(store, authorize, lambda *args: None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("git server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        app.state.git_http.notifier.shutdown(wait=True)


def time_clone(url: str, dest: Path) -> float:
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    env = git_env(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    )
    shutil.rmtree(dest, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", url, str(dest)], env=env, check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(dest)
    return seconds


def simulate_task(path: Path, files: int, step: int) -> None:
    """What an agent leaves behind: edits, a new file, and a build directory."""
    for n in (step, step + 7, step + 13):
        target = path / _path(n % files)
        target.write_text(target.read_text() + f"edited by task {step}\n")
    (path / f"NOTES-{step}.md").write_text("notes\n")
    build = path / "build"
    build.mkdir(exist_ok=True)
    for k in range(50):
        (build / f"out{k}.o").write_bytes(b"\0" * 512)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    store = GitStore(tmp / "remote")
    repo_dir = store.path(REPO)
    repo_dir.parent.mkdir(parents=True)
    started = time.perf_counter()
    generate(repo_dir, args.files, args.commits)
    generate_s = time.perf_counter() - started
    n_files = len(
        subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", "main"], cwd=repo_dir, env=git_env(),
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
    )  # fmt: skip
    n_commits = int(
        subprocess.run(
            ["git", "rev-list", "--count", "main"], cwd=repo_dir, env=git_env(),
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip

    with serve(store) as base_url:
        url = f"{base_url}/{REPO}.git"
        ws = Workspaces(tmp / "runner", pool_size=2)

        def prepare(branch: str) -> tuple[float, Path, bool]:
            t0 = time.perf_counter()
            p = ws.prepare(repo=REPO, clone_url=url, token=TOKEN, branch=branch)
            return time.perf_counter() - t0, p.path, p.reused

        first_s, path, _ = prepare("bench/warmup")  # creates the mirror and the first worktree
        simulate_task(path, args.files, 0)
        ws.release(path)

        # clones and prepares alternate, so both see the same background load
        clones: list[float] = []
        prepares: list[float] = []
        releases: list[float] = []
        for step in range(1, max(args.runs, args.clone_runs) + 1):
            if step <= args.clone_runs:
                clones.append(time_clone(url, tmp / "clone"))
            if step > args.runs:
                continue
            advance_main(repo_dir, args.files, step)
            seconds, path, reused = prepare(f"bench/task-{step}")
            assert reused, "steady state must reuse the warm worktree"
            prepares.append(seconds)
            simulate_task(path, args.files, step)
            t0 = time.perf_counter()
            ws.release(path)
            releases.append(time.perf_counter() - t0)

        extra = disk_bytes(path) + disk_bytes(worktree_admin_dir(path))
        # for comparison: a worktree added afresh while the warm one is busy
        _, busy, _ = prepare("bench/busy")
        fresh_s, fresh, reused = prepare("bench/fresh")
        assert not reused
        ws.release(fresh, keep_warm=False)
        ws.release(busy)
        mirror_mb = disk_bytes(tmp / "runner" / "mirrors") / 2**20

    paired = [p / c for p, c in zip(prepares, clones, strict=False)]  # runs may outnumber clones
    worktree_s = statistics.median(prepares)
    clone_s = statistics.median(clones)
    return {
        "files": n_files,
        "commits": n_commits,
        "worktree_s": round(worktree_s, 3),
        "clone_s": round(clone_s, 3),
        "ratio_vs_clone": round(worktree_s / clone_s, 3),
        "ratio_paired_median": round(statistics.median(paired), 3),
        "extra_disk_mb": round(extra / 2**20, 1),
        "worktree_runs_s": [round(s, 3) for s in prepares],
        "clone_runs_s": [round(s, 3) for s in clones],
        "release_s": round(statistics.median(releases), 3),
        "first_prepare_s": round(first_s, 3),
        "fresh_worktree_s": round(fresh_s, 3),
        "mirror_mb": round(mirror_mb, 1),
        "generate_s": round(generate_s, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--runs", type=int, default=9, help="measured steady-state prepares")
    parser.add_argument("--clone-runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-worktree-") as tmp:
        result = run(args, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
