"""Benchmark filing a plan on GitHub's content-creation limits: pace, and no duplicate after a kill.

    python bench/plan.py --json FILE [--tasks 50] [--edges 100] [--minute-s 60] [--seed 7]

Starts fakehub in this process with GitHub's secondary limits on (80 content-creating requests a
minute and 500 an hour per credential; ``--minute-s`` shortens the minute for a quick run, and
the hour is 60 of those minutes) and an App installed on ``octo/app``. The plan is ``--tasks``
tasks and ``--edges`` "blocked by" edges, drawn at random (``--seed``) among pairs of tasks,
always from an earlier task to a later one.

1. Pace: a filer process (this script with ``--child``: its own GitHub adapter and SQLite store,
   as the bot has) files the plan under epic #1 and reports how long ``PlanFiler.file`` took.
   ``requests`` are the content-creating requests fakehub saw (accepted and refused),
   ``floor_s`` the time the limit alone forces for the accepted ones (a full minute after each
   80, an hour after each 500), ``rejected_403_429`` the refusals.
2. Kill and restart: a filer files the same plan under epic #2, is killed (SIGKILL) once half
   of its writes went through, and a second filer with the same store finishes the job.
   ``duplicates`` counts issues beyond one per (plan, task) marker; ``links_ok`` says whether
   the epic's sub-issues and each issue's "blocked by" links are exactly the plan's.

Prints and writes ``{"seconds", "floor_s", "ratio_to_floor", "requests", "rejected_403_429",
"duplicates", ...}``. Targets: ``ratio_to_floor`` <= 1.15, ``rejected_403_429`` 0, ``duplicates`` 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.github import GitHubAdapter, WriteBudget  # noqa: E402
from bot.core.model import IssueRef  # noqa: E402
from bot.core.plan import Plan, PlannedTask, parse_task_marker  # noqa: E402
from bot.director.filing import PlanFiler  # noqa: E402
from bot.store import Store  # noqa: E402
from fakehub.server import FakeHub  # noqa: E402

REPO = "octo/app"
PER_MINUTE = 80
PER_HOUR = 500


def make_plan(tasks: int, edges: int, seed: int) -> Plan:
    pairs = [(a, b) for b in range(tasks) for a in range(b)]
    chosen = random.Random(seed).sample(pairs, min(edges, len(pairs)))
    blockers: dict[int, list[int]] = {i: [] for i in range(tasks)}
    for a, b in chosen:
        blockers[b].append(a)
    return Plan(
        summary="bench plan",
        tasks=tuple(
            PlannedTask(
                title=f"Task {i}",
                body=f"Do part {i}.",
                acceptance_criteria=(f"part {i} works",),
                blockers=tuple(sorted(blockers[i])),
            )
            for i in range(tasks)
        ),
    )


def floor_s(requests: int, minute_s: float) -> float:
    """What the content-creation limit alone forces for ``requests`` accepted writes."""
    if requests == 0:
        return 0.0
    return max(
        minute_s * ((requests - 1) // PER_MINUTE), 60 * minute_s * ((requests - 1) // PER_HOUR)
    )


# --- the filer process ---------------------------------------------------------------------


async def file_plan(spec: dict[str, Any]) -> dict[str, Any]:
    minute_s = float(spec["minute_s"])
    gh = GitHubAdapter(
        app_id=spec["app_id"],
        private_key=spec["private_key"],
        base_url=spec["api_url"],
        write_budget=WriteBudget(
            per_minute=PER_MINUTE, per_hour=PER_HOUR, minute_s=minute_s, hour_s=60 * minute_s
        ),
    )
    store = Store(spec["store_url"])
    plan = make_plan(spec["tasks"], spec["edges"], spec["seed"])
    try:
        started = time.monotonic()
        filed = await PlanFiler(gh, store).file(
            spec["installation"], IssueRef(REPO, spec["epic"]), spec["plan_id"], plan
        )
        return {"seconds": time.monotonic() - started, "filed": len(filed)}
    finally:
        store.close()
        await gh.aclose()


def child_main() -> None:
    spec = json.loads(sys.stdin.read())
    spec["private_key"] = Path(spec["key_file"]).read_text()
    print(json.dumps(asyncio.run(file_plan(spec))), flush=True)


def spawn(spec: dict[str, Any]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(  # noqa: S603 - this interpreter and this script
        [sys.executable, __file__, "--child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"the filer failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# --- checking what was filed -----------------------------------------------------------------


def issues(api: httpx.Client, path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in range(1, 100):
        chunk = api.get(path, params={"state": "all", "per_page": 100, "page": page}).json()
        found += chunk
        if len(chunk) < 100:
            return found
    return found


def check(api: httpx.Client, plan: Plan, plan_id: str, epic: int) -> dict[str, Any]:
    markers: Counter[int] = Counter()
    numbers: dict[int, int] = {}
    for issue in issues(api, f"/repos/{REPO}/issues"):
        found = parse_task_marker(issue.get("body"))
        if found and found[0] == plan_id:
            markers[found[1]] += 1
            numbers[found[1]] = issue["number"]
    duplicates = sum(n - 1 for n in markers.values())
    missing = len(plan.tasks) - len(markers)
    children = {i["number"] for i in issues(api, f"/repos/{REPO}/issues/{epic}/sub_issues")}
    links_ok = missing == 0 and children == set(numbers.values())
    for idx, task in enumerate(plan.tasks if links_ok else ()):
        path = f"/repos/{REPO}/issues/{numbers[idx]}/dependencies/blocked_by"
        have = {i["number"] for i in issues(api, path)}
        links_ok = links_ok and have == {numbers[b] for b in task.blockers}
    return {"duplicates": duplicates, "missing": missing, "links_ok": links_ok}


# --- the run ---------------------------------------------------------------------------------


def run(tasks: int, edges: int, minute_s: float, seed: int) -> dict[str, Any]:
    plan = make_plan(tasks, edges, seed)
    writes = 2 * len(plan.tasks) + sum(len(t.blockers) for t in plan.tasks)
    with (
        tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp,
        FakeHub(Path(tmp) / "hub") as hub,
    ):
        lead = hub.create_user("lead")
        hub.create_user("octo", type="Organization")
        hub.create_repo("octo", "app", {"README.md": "bench\n"})
        hub.set_permission(REPO, "lead", "admin")
        app = hub.create_app(
            slug="sf", webhook_url=None, webhook_secret="s", events=[],
            permissions={"issues": "write", "contents": "read"},
        )  # fmt: skip
        installation = hub.install_app(app.id, "octo", ["app"])
        key_file = Path(tmp) / "app.pem"
        key_file.write_text(app.private_key_pem)
        api = httpx.Client(
            base_url=hub.api_url, headers={"Authorization": f"token {lead.token}"}, timeout=30
        )
        for title in ("Epic: paced", "Epic: killed and restarted"):
            api.post(f"/repos/{REPO}/issues", json={"title": title}).raise_for_status()
        hub.faults.update(
            content_limits=True,
            content_per_minute=PER_MINUTE,
            content_per_hour=PER_HOUR,
            content_minute_s=minute_s,
        )
        spec = {
            "app_id": app.id,
            "key_file": str(key_file),
            "api_url": hub.api_url,
            "installation": installation,
            "tasks": tasks,
            "edges": edges,
            "seed": seed,
            "minute_s": minute_s,
        }
        # 1. pace
        paced = finish(spawn({**spec, "epic": 1, "plan_id": "bench-1",
                              "store_url": f"sqlite:///{tmp}/paced.db"}))  # fmt: skip
        counts = hub.faults.content_counts()
        paced_check = check(api, plan, "bench-1", 1)
        # 2. kill half-way, restart
        hub.faults.reset_content_counts()
        restart = {**spec, "epic": 2, "plan_id": "bench-2", "store_url": f"sqlite:///{tmp}/k.db"}
        proc = spawn(restart)
        while hub.faults.content_counts()["accepted"] < writes // 2 and proc.poll() is None:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_after = hub.faults.content_counts()["accepted"]
        finish(spawn(restart))
        restarted = check(api, plan, "bench-2", 2)
        restart_counts = hub.faults.content_counts()
        api.close()
    requests = counts["accepted"] + counts["rejected"]
    floor = floor_s(counts["accepted"], minute_s)
    return {
        "seconds": round(paced["seconds"], 3),
        "floor_s": floor,
        "ratio_to_floor": round(paced["seconds"] / floor, 3) if floor else None,
        "requests": requests,
        "rejected_403_429": counts["rejected"],
        "duplicates": restarted["duplicates"],
        "tasks": tasks,
        "edges": sum(len(t.blockers) for t in plan.tasks),
        "minute_s": minute_s,
        "planned_writes": writes,
        "paced_links_ok": paced_check["links_ok"] and paced_check["duplicates"] == 0,
        "restart_killed_after_writes": killed_after,
        "restart_writes": restart_counts["accepted"],
        "restart_rejected": restart_counts["rejected"],
        "restart_missing": restarted["missing"],
        "restart_links_ok": restarted["links_ok"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the result here")
    parser.add_argument("--tasks", type=int, default=50, help="tasks in the plan")
    parser.add_argument("--edges", type=int, default=100, help='"blocked by" edges')
    parser.add_argument(
        "--minute-s", type=float, default=60.0, help="length of the limits' minute (GitHub: 60)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the random plan")
    args = parser.parse_args(argv)
    result = run(args.tasks, args.edges, args.minute_s, args.seed)
    text = json.dumps(result, indent=2)
    args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child_main()
    else:
        main()
