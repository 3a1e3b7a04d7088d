"""The speculative merge queue end to end (issue 13, section 5), through fakehub's Git refs and
merges API, its webhooks and its real CI on the candidate branches.

Three pull requests are tested together, each on top of the ones ahead; the middle one breaks
CI only beside the first (a semantic conflict: each is green alone). The first lands; the middle
one's candidate is re-run once, then taken out (``steward.fix_attempts: 0``: it fails, never
merged); the third is tested again without it and lands. fakehub's own records show that every
commit the base moved to is exactly a candidate commit whose CI was green before it landed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.harness import World, open_world, wait_until

pytestmark = pytest.mark.slow

#: green alone; red when a.txt and b.txt meet (and a second to keep the candidates in flight)
CI = [
    sys.executable,
    "-c",
    "import pathlib, sys, time\n"
    "time.sleep(1.0)\n"
    "if pathlib.Path('a.txt').exists() and pathlib.Path('b.txt').exists():\n"
    "    print('FAILED test_ab - a and b disagree')\n"
    "    sys.exit(1)\n"
    "print('1 passed')\n",
]
CONFIG = "version: 1\nmerge:\n  mode: speculative\n  speculation: 3\nsteward:\n  fix_attempts: 0\n"


def _speculative(world: World) -> None:
    assert world.bot is not None
    repos = world.bot.app.state.bot.repos
    world.push_main({".github/stoneforge.yml": CONFIG})
    world.wait_until(
        lambda: repos.config(world.repo.full_name).merge.mode == "speculative",
        what="the configuration loaded",
    )


def _require_an_approval(world: World) -> None:
    with world.api() as lead:
        lead.post(
            f"/repos/{world.repo.full_name}/rulesets",
            json={
                "name": "review",
                "target": "branch",
                "enforcement": "active",
                "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH"], "exclude": []}},
                "rules": [
                    {"type": "pull_request", "parameters": {"required_approving_review_count": 1}}
                ],
            },
        ).raise_for_status()


def test_three_prs_tested_together_the_red_middle_one_is_taken_out_and_the_rest_land(
    tmp_path: Path,
) -> None:
    with open_world(tmp_path, bot=True, ci_command=CI, required=["ci"], ci_workers=4) as world:
        world.repo.ci_push = ["stoneforge/queue/*"]
        _speculative(world)
        full = world.repo.full_name
        _require_an_approval(world)
        numbers = [world.file_labeled(f"Add {name}") for name in ("a", "b", "c")]
        jobs = [wait_until(lambda: world.claim(wait_s=1), what="a job") for _ in numbers]
        for job in sorted(jobs, key=lambda j: j["issue"]):
            name = "abc"[numbers.index(job["issue"])]
            world.work(job, {f"{name}.txt": f"{name}\n"})
        first, middle, last = numbers
        # The queue opens once all three are green on their own: the approvals come together.
        heads = world.wait_until(
            lambda: (t := world.tasks()) and all(t[n].get("pr") for n in numbers) and t,
            what="three pull requests",
        )
        world.wait_until(
            lambda: (
                {e["sha"] for e in world.hub.events("check_completed")}
                >= {heads[n]["head_sha"] for n in numbers}
            ),
            what="CI on the three heads",
        )
        with world.api() as lead:
            for n in numbers:
                lead.post(
                    f"/repos/{full}/pulls/{heads[n]['pr']}/reviews", json={"event": "APPROVE"}
                ).raise_for_status()

        def done() -> dict[int, str] | None:
            states = {n: world.tasks()[n]["state"] for n in numbers}
            return states if all(s in ("merged", "failed") for s in states.values()) else None

        states = world.wait_until(done, timeout=90, what="every task merged or failed")
        assert states == {first: "merged", middle: "failed", last: "merged"}
        tasks = world.tasks()
        assert "failed in the merge queue" in tasks[middle]["detail"]
        assert "> FAILED test_ab - a and b disagree" in tasks[middle]["detail"]
        with world.client() as bot:
            pulls = {n: bot.get(f"/repos/{full}/pulls/{tasks[n]['pr']}").json() for n in numbers}
        assert [pulls[n]["merged"] for n in numbers] == [True, False, True]
        assert pulls[middle]["state"] == "open", "not merged, left for a person"

        events = world.hub.events()
        assert not [e for e in events if e["type"] == "merge"], "never the merge API"
        by_push = {e["pr"] for e in events if e["type"] == "merged_by_push"}
        assert by_push == {tasks[first]["pr"], tasks[last]["pr"]}
        # Every commit the base moved to after the configuration is a candidate, green first.
        start = next(
            i for i, e in enumerate(events) if e["type"] == "push" and e["ref"] == "refs/heads/main"
        )
        landings = [
            e for e in events[start + 1 :] if e["type"] == "push" and e["ref"] == "refs/heads/main"
        ]
        assert landings, "the base moved"
        ahead = events.index(landings[0])
        tested = [
            e
            for e in events[:ahead]
            if e["type"] == "push" and e["ref"].startswith("refs/heads/stoneforge/queue/")
        ]
        assert len(tested) == 3, "all three were under test before the first landed"
        for landing in landings:
            at = events.index(landing)
            built = [
                e
                for e in events[:at]
                if e["type"] == "push"
                and e["ref"].startswith("refs/heads/stoneforge/queue/main/")
                and e["after"] == landing["after"]
            ]
            assert built, f"{landing['after']} was not a candidate"
            green = [
                e["conclusion"]
                for e in events[:at]
                if e["type"] == "check_completed" and e["sha"] == landing["after"]
            ]
            assert green, f"no CI on {landing['after']}"
            assert set(green) == {"success"}, (landing, green)
        # the middle one's candidate failed twice (its re-run), then it was taken out
        red = {
            e["sha"]
            for e in events
            if e["type"] == "check_completed" and e["conclusion"] == "failure"
        }
        assert red
        runs = [e for e in events if e["type"] == "check_completed" and e["sha"] in red]
        assert any(sum(1 for r in runs if r["sha"] == sha) == 2 for sha in red), "re-run once"
        world.wait_until(
            lambda: (
                not [
                    b
                    for b in world.hub.store.branches(full)
                    if b.startswith(("stoneforge/queue/", "stoneforge/scratch/"))
                ]
            ),
            what="candidate and scratch branches deleted after use",
        )
        main = world.hub.store.ref_sha(full, "main")
        assert world.hub.store.read_file(full, main, "c.txt") == b"c\n"
        assert world.hub.store.read_file(full, main, "b.txt") is None
