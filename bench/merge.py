"""Benchmark the merge queue: merges per CI duration, serial and speculative, beside the model.

    python bench/merge.py --json FILE [--prs 32] [--ci-seconds 3] [--fail-rate 0.1] [--k 4]
                          [--seed 13] [--timeout 600]

Runs the demo's pipeline (``demo.pipeline.Pipeline``: fakehub in this process, the bot and one
runner as real processes, the ``script`` agent) twice, with ``merge.mode: serial`` and with
``merge.mode: speculative`` and ``merge.speculation: --k``; everything else is the same.

``--prs`` independent tasks (no blockers, no conflicts: each agent writes a file of its own
under ``queue/``) become ready pull requests. fakehub's simulated CI sleeps ``--ci-seconds``
and then fails genuinely, on every run, for a seeded ``--fail-rate`` share of them: a failing
pull request writes ``queue/break-N.txt``, and CI fails on any tree holding a break file beside
another pull request's file (a semantic conflict: each pull request is green alone, so every
one enters the queue, and the failure shows in the queue, as the model's ``p`` counts it). The
first pull request in dispatch order is never a failing one (alone on the base, it would pass).
``steward.fix_attempts: 0``: a pull request that fails in the queue fails its task at once.
CI reports a commit status (``Repo.ci_reports = "status"``), which cannot be re-run: neither
mode spends a re-run on a failure, so the model needs no re-run term.

The repository protects ``main`` as the demo's does (required ``ci``, strict: serial mode brings
each pull request up to date and tests it before merging it) and, through a ruleset, requires
one approving review: the queue opens when every pull request is green on its own head and the
maintainer approves them all at once (``t0``). Throughput is the merged pull requests over the
time from ``t0`` to the base's last move, in merges per ``T``, where ``T`` is the median CI run
fakehub measured after ``t0`` (the sleep plus the fresh checkout). The model (merge-anchors.md
section 7.2), with ``p`` the share of failing pull requests:

    serial       X_1 = (1 - p) / T
    speculative  X_k = (1 - p) (1 - (1 - p)^k) / (p T)

The steward's own overhead (polling, webhooks, API calls, building candidates) is ``R`` in the
model's ``T' = T + R``: it is not subtracted, so a ratio of 0.9 means ``R <= 0.1 T``. The finite
queue costs the speculative run a partly filled last batch; more ``--prs`` make that smaller.

Prints and writes ``serial_ratio_to_model``, ``speculative_ratio_to_model`` (targets >= 0.9
each) and ``speculative_speedup`` (speculative merges per T over serial's; target >= 2.5), with
the raw numbers of each run and the machine.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.model import IssueRef  # noqa: E402
from bot.core.speculation import Candidate, CandidateCI, Entry, plan_speculation  # noqa: E402
from demo.pipeline import FULL, Pipeline  # noqa: E402
from demo.sample import script_block  # noqa: E402

TRIGGER = "agent-ready"
CONFIG = (
    "version: 1\nconcurrency:\n  per_repo: 100\n"
    "merge:\n  mode: {mode}\n  speculation: {k}\nsteward:\n  fix_attempts: 0\n"
)
#: sleep, then fail when a break file meets another pull request's file
CI_SCRIPT = (
    "import pathlib, sys, time\n"
    "time.sleep({seconds})\n"
    "files = sorted(p.name for p in pathlib.Path('queue').glob('*.txt'))\n"
    "broken = [f for f in files if f.startswith('break-')]\n"
    "if broken and len(files) > 1:\n"
    "    print('FAILED', broken[0], 'breaks beside', len(files) - 1, 'other change(s)')\n"
    "    sys.exit(1)\n"
    "print(len(files), 'passed')\n"
)


_SKIPPED: dict[str, Any] = {"ratio_to_model": None, "merges_per_T": float("nan")}


def failing(prs: int, rate: float, seed: int) -> set[int]:
    """Indexes (0-based, in dispatch order) of the pull requests that fail in the queue."""
    count = round(prs * rate)
    return set(random.Random(seed).sample(range(1, prs), count))


def run_once(mode: str, args: argparse.Namespace, bad: set[int]) -> dict[str, Any]:
    ci = [sys.executable, "-I", "-S", "-c", CI_SCRIPT.format(seconds=args.ci_seconds)]
    work = Path(tempfile.mkdtemp(prefix=f"bench-merge-{mode}-"))
    pipe = Pipeline(
        work=work,
        workers=8,
        agent="script",
        sprint=(),
        repo_files={
            ".github/stoneforge.yml": CONFIG.format(mode=mode, k=args.k),
            "queue/README.md": "One file per pull request.\n",
        },
        ci_command=ci,
        ci_workers=max(8, args.k + 2),
        extra_env={"STONEFORGE_LOG_FORMAT": "json"},
    )
    deadline = time.time() + args.timeout
    try:
        pipe.start()
        repo = pipe.hub.state.repo(FULL)
        assert repo is not None
        repo.ci_reports = "status"
        repo.ci_push = ["stoneforge/queue/*"]
        _require_an_approval(pipe)
        numbers = _file_tasks(pipe, args.prs, bad)
        tasks = _wait(pipe, lambda: _all_green(pipe, numbers), deadline, "green pull requests")
        t0 = time.time()
        with pipe.api() as api:
            for n in numbers:
                api.post(
                    f"/repos/{FULL}/pulls/{tasks[n]['pr']}/reviews", json={"event": "APPROVE"}
                ).raise_for_status()
        final = _wait(pipe, lambda: _all_done(pipe, numbers), deadline, "every task done")
        return _measure(pipe, mode, numbers, final, bad, t0, args)
    finally:
        pipe.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _require_an_approval(pipe: Pipeline) -> None:
    with pipe.api() as api:
        api.post(
            f"/repos/{FULL}/rulesets",
            json={
                "name": "one approval",
                "target": "branch",
                "enforcement": "active",
                "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
                "rules": [
                    {"type": "pull_request", "parameters": {"required_approving_review_count": 1}}
                ],
            },
        ).raise_for_status()


def _file_tasks(pipe: Pipeline, prs: int, bad: set[int]) -> list[int]:
    numbers = []
    for i in range(prs):
        name = f"break-{i:03}.txt" if i in bad else f"pr-{i:03}.txt"
        script = {"sleep": 0, "edits": [{"path": f"queue/{name}", "write": f"change {i}\n"}],
                  "summary": f"Add {name}"}  # fmt: skip
        numbers.append(pipe.file_issue(f"Add {name}", f"Add {name}.\n\n{script_block(script)}\n"))
    with pipe.api() as api:
        for n in numbers:  # labeled in order: dispatch order is issue order
            api.post(f"/repos/{FULL}/issues/{n}/labels", json={"labels": [TRIGGER]})
    return numbers


def _all_green(pipe: Pipeline, numbers: list[int]) -> dict[int, dict[str, Any]] | None:
    tasks = {int(t["issue"]): t for t in pipe.tasks()}
    if not all(n in tasks and tasks[n].get("pr") for n in numbers):
        return None
    done = {e["sha"] for e in pipe.hub.events("check_completed")}
    return tasks if all(tasks[n]["head_sha"] in done for n in numbers) else None


def _all_done(pipe: Pipeline, numbers: list[int]) -> dict[int, dict[str, Any]] | None:
    tasks = {int(t["issue"]): t for t in pipe.tasks()}
    states = [tasks.get(n, {}).get("state") for n in numbers]
    return tasks if all(s in ("merged", "failed", "cancelled") for s in states) else None


def _wait(pipe: Pipeline, found: Any, deadline: float, what: str) -> Any:
    while time.time() < deadline:
        if crash := pipe.crashed():
            raise RuntimeError(crash)
        if (value := found()) is not None:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def _measure(
    pipe: Pipeline,
    mode: str,
    numbers: list[int],
    tasks: dict[int, dict[str, Any]],
    bad: set[int],
    t0: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    events = pipe.hub.events()
    moves = [e for e in events if e["type"] == "push" and e["ref"] == "refs/heads/main"]
    moves = [e for e in moves if e["at"] >= t0]
    runs = [e for e in events if e["type"] == "check_completed" and e["at"] >= t0]
    runs = [e for e in runs if e["name"] == "ci" and "seconds" in e]
    merged = [n for n in numbers if tasks[n]["state"] == "merged"]
    wrongly = [n for i, n in enumerate(numbers) if (i in bad) == (tasks[n]["state"] == "merged")]
    elapsed = max(e["at"] for e in moves) - t0 if moves else float("nan")
    ci_t = statistics.median(float(e["seconds"]) for e in runs) if runs else args.ci_seconds
    p = len(bad) / len(numbers)
    k = args.k if mode == "speculative" else 1
    model = (1 - p) / ci_t if k == 1 else (1 - p) * (1 - (1 - p) ** k) / (p * ci_t)
    measured = len(merged) / elapsed
    first = moves[0] if moves else None
    settled = len(merged) - (_landed_by(events, first) if first else 0)
    window = t0 + elapsed - first["at"] if first else 0.0
    steady = settled / window if window > 0 else float("nan")
    best = ideal(len(numbers), bad, k)
    if args.timeline:
        _print_timeline(events, t0)
    return {
        "mode": mode,
        "k": k,
        "prs": len(numbers),
        "merged": len(merged),
        "failed": sum(1 for n in numbers if tasks[n]["state"] == "failed"),
        "wrong_outcomes": len(wrongly),  # a good one not merged or a failing one merged
        "seconds": round(elapsed, 2),
        "ci_runs": len(runs),
        "ci_runs_per_merge": round(len(runs) / len(merged), 3) if merged else None,
        "ci_seconds_median": round(ci_t, 3),
        "base_moves": len(moves),
        "merges_per_T": round(measured * ci_t, 3),
        "model_merges_per_T": round(model * ci_t, 3),
        "ratio_to_model": round(measured / model, 3),
        # between the first landing and the last: the queue's fill left out
        "steady_merges_per_T": round(steady * ci_t, 3),
        "steady_ratio_to_model": round(steady / model, 3),
        # this finite queue with no overhead at all (R = 0): what the model's T' leaves
        "ideal_merges_per_T": round(best, 3),
        "ratio_to_ideal": round(measured * ci_t / best, 3),
    }


def _landed_by(events: list[dict[str, Any]], landing: dict[str, Any]) -> int:
    """Pull requests the base's move ``landing`` merged."""
    sha = landing["after"]
    return sum(
        1
        for e in events
        if (e["type"] == "merge" and e["merge_sha"] == sha)
        or (e["type"] == "merged_by_push" and e["pushed"] == sha)
    )


def _print_timeline(events: list[dict[str, Any]], t0: float) -> None:
    """The queue's moves after ``t0``, for reading where the time goes (``--timeline``)."""
    for e in events:
        if e["at"] < t0:
            continue
        if e["type"] == "push":
            what = f"push {e['ref'].removeprefix('refs/heads/')} {e['after'][:7]}"
        elif e["type"] == "check_completed" and e.get("name") == "ci":
            what = f"ci {e['conclusion']} {e['sha'][:7]} ({e.get('seconds')} s)"
        elif e["type"] in ("merge", "merged_by_push", "branch_updated"):
            what = f"{e['type']} #{e.get('pr')}"
        else:
            continue
        clock = time.strftime("%H:%M:%S", time.gmtime(e["at"])) + f"{e['at'] % 1:.3f}"[1:]
        print(f"{e['at'] - t0:8.2f}  {clock}  {what}", file=sys.stderr)


def ideal(prs: int, bad: set[int], k: int) -> float:
    """Merges per T of this very queue with no overhead at all (``R = 0``): the pure
    ``bot.core.speculation`` decisions driven with every CI run taking exactly T, so a finite
    queue's fill and drain are counted as the run counts them (the model assumes an endless
    queue). Serial (``k = 1``) merges its first pull request untested, as the run does."""
    queue = [Entry(IssueRef("o/r", i), i, f"h{i}") for i in range(prs)]
    contents: dict[str, frozenset[int]] = {"base": frozenset()}
    base, batch, now, made, merged, last = "base", [], 0.0, 0, 0, 0.0
    verdicts: dict[str, CandidateCI] = {}
    done: list[tuple[float, str]] = []
    while queue or batch:
        decision = plan_speculation(batch, base, queue, verdicts, k=k)
        if decision.land:
            base, merged, last = decision.land[-1].sha, merged + len(decision.land), now
        out = {c.entry.task for c in decision.land}
        out |= {decision.eject.entry.task} if decision.eject else set()
        queue = [e for e in queue if e.task not in out]
        batch, parent = list(decision.keep), decision.build_on
        for entry in decision.build:
            made += 1
            sha = f"c{made}"
            contents[sha] = contents[parent] | {entry.task.number}
            batch.append(Candidate(entry, parent, sha, sha))
            # serial: the first is up to date and green already; it merges at once
            heapq.heappush(done, (now if k == 1 and made == 1 else now + 1.0, sha))
            parent = sha
        live = {c.sha for c in batch}
        while done:
            now, sha = heapq.heappop(done)
            if sha in live:
                red = bool(contents[sha] & bad) and len(contents[sha]) > 1
                verdicts[sha] = CandidateCI("red", "ci") if red else CandidateCI("green")
                break
    return merged / last if last else float("nan")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the results here")
    parser.add_argument("--prs", type=int, default=32, help="pull requests per run")
    parser.add_argument("--ci-seconds", type=float, default=3.0, help="CI's sleep, T")
    parser.add_argument("--fail-rate", type=float, default=0.1, help="share failing, p")
    parser.add_argument("--k", type=int, default=4, help="speculative depth")
    parser.add_argument("--seed", type=int, default=13, help="chooses the failing ones")
    parser.add_argument("--timeout", type=float, default=600.0, help="per run, in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--timeline", action="store_true", help="print each run's moves")
    parser.add_argument(
        "--modes", default="serial,speculative", help="which runs (for looking at one)"
    )
    args = parser.parse_args(argv)
    host = machine()
    bad = failing(args.prs, args.fail_rate, args.seed)
    modes = args.modes.split(",")
    serial = run_once("serial", args, bad) if "serial" in modes else _SKIPPED
    speculative = run_once("speculative", args, bad) if "speculative" in modes else _SKIPPED
    result = {
        "serial_ratio_to_model": serial["ratio_to_model"],
        "speculative_ratio_to_model": speculative["ratio_to_model"],
        "speculative_speedup": round(speculative["merges_per_T"] / serial["merges_per_T"], 3),
        "targets": {"ratio_to_model": ">= 0.9", "speculative_speedup": ">= 2.5"},
        "prs": args.prs,
        "fail_rate": args.fail_rate,
        "failing_prs": sorted(bad),
        "ci_sleep_s": args.ci_seconds,
        "k": args.k,
        "seed": args.seed,
        "reruns": "none: CI reports a commit status, which cannot be re-run (no re-run term)",
        "serial": serial,
        "speculative": speculative,
        "machine": host,
    }
    text = json.dumps(result, indent=2)
    args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
