"""Filing a plan on fakehub: the issues, sub-issues and "blocked by" links exactly as planned,
and never a duplicate, whether filed twice or killed half-way and filed again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from bot.adapters.github import GitHubAdapter, IssueInfo
from bot.core.model import IssueRef
from bot.core.plan import Plan, PlannedTask, parse_task_marker
from bot.director.filing import PlanFiler
from tests.director.conftest import World

EPIC = IssueRef("octo/app", 1)  # made by the ``w`` fixture
#: task index -> its blockers; 4 is blocked by a later task (9), so filing order is not index order
BLOCKERS: dict[int, tuple[int, ...]] = {
    0: (),
    1: (0,),
    2: (0,),
    3: (1, 2),
    4: (9,),
    5: (3,),
    6: (3, 4),
    7: (),
    8: (7, 5),
    9: (7,),
}
PLAN = Plan(
    tasks=tuple(
        PlannedTask(title=f"Task {i}", acceptance_criteria=(f"task {i} works",), blockers=b)
        for i, b in BLOCKERS.items()
    )
)


class Killed(Exception):
    """The bot died here."""


class Writes:
    """The adapter, counting its writes; with ``die_after`` it dies right after that many
    writes went through, before the filer heard back (so before the store recorded them)."""

    def __init__(self, gh: GitHubAdapter, die_after: int | None = None) -> None:
        self.gh = gh
        self.die_after = die_after
        self.count = 0

    def _wrote(self) -> None:
        self.count += 1
        if self.die_after is not None and self.count >= self.die_after:
            raise Killed

    async def create_issue(
        self, installation_id: int, repo: str, *, title: str, body: str, labels: Sequence[str]
    ) -> IssueInfo:
        info = await self.gh.create_issue(
            installation_id, repo, title=title, body=body, labels=labels
        )
        self._wrote()
        return info

    async def add_sub_issue(self, installation_id: int, parent: IssueRef, child_id: int) -> None:
        await self.gh.add_sub_issue(installation_id, parent, child_id)
        self._wrote()

    async def add_blocked_by(self, installation_id: int, ref: IssueRef, blocker_id: int) -> None:
        await self.gh.add_blocked_by(installation_id, ref, blocker_id)
        self._wrote()

    async def labeled_issues(self, installation_id: int, repo: str, label: str) -> list[IssueInfo]:
        return await self.gh.labeled_issues(installation_id, repo, label)

    async def sub_issues(self, installation_id: int, ref: IssueRef) -> list[IssueInfo]:
        return await self.gh.sub_issues(installation_id, ref)

    async def blocked_by(self, installation_id: int, ref: IssueRef) -> list[IssueRef]:
        return await self.gh.blocked_by(installation_id, ref)


EDGES = sum(len(b) for b in BLOCKERS.values())
WRITES = 2 * len(BLOCKERS) + EDGES  # an issue, a sub-issue link, and each "blocked by" link


async def assert_filed_as_planned(w: World, plan_id: str, filed: list[IssueInfo]) -> None:
    """One issue per task on GitHub, each under the epic with exactly its planned blockers."""
    drafts = await w.gh.labeled_issues(w.inst, "octo/app", "stoneforge:draft")
    markers = Counter(parse_task_marker(i.body) for i in drafts)
    assert markers == Counter((plan_id, i) for i in range(len(BLOCKERS)))
    assert [parse_task_marker(i.body) for i in filed] == [(plan_id, i) for i in BLOCKERS]
    assert [i.title for i in filed] == [t.title for t in PLAN.tasks]
    children = await w.gh.sub_issues(w.inst, EPIC)
    assert sorted(c.number for c in children) == sorted(i.number for i in filed)
    for idx, blockers in BLOCKERS.items():
        links = await w.gh.blocked_by(w.inst, filed[idx].ref)
        assert sorted(r.number for r in links) == sorted(filed[b].number for b in blockers)
        line = ", ".join(f"#{n}" for n in sorted(filed[b].number for b in blockers))
        assert (f"Blocked by {line}" in filed[idx].body) == bool(blockers)
    rows = w.store.plan_task_rows(plan_id)
    assert [(r.number, r.issue_id, r.linked) for r in rows] == [
        (i.number, i.id, True) for i in filed
    ]


async def test_a_plan_is_filed_as_planned_and_filing_again_changes_nothing(w: World) -> None:
    first = Writes(w.gh)
    filed = await PlanFiler(first, w.store).file(w.inst, EPIC, "p1", PLAN)
    assert first.count == WRITES
    await assert_filed_as_planned(w, "p1", filed)
    again = Writes(w.gh)
    refiled = await PlanFiler(again, w.store).file(w.inst, EPIC, "p1", PLAN)
    assert again.count == 0
    assert [i.number for i in refiled] == [i.number for i in filed]
    await assert_filed_as_planned(w, "p1", filed)


@pytest.mark.parametrize("die_after", [1, 4, 10, 11, 17, WRITES - 1])
async def test_a_filer_killed_half_way_files_the_rest_and_no_duplicate(
    w: World, die_after: int
) -> None:
    dying = Writes(w.gh, die_after=die_after)
    with pytest.raises(Killed):
        await PlanFiler(dying, w.store).file(w.inst, EPIC, "p1", PLAN)
    rest = Writes(w.gh)
    filed = await PlanFiler(rest, w.store).file(w.inst, EPIC, "p1", PLAN)
    assert dying.count + rest.count == WRITES  # not one write more than a clean run
    await assert_filed_as_planned(w, "p1", filed)
