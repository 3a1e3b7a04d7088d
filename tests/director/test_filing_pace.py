"""Filing under GitHub's content-creation limits, enforced by fakehub (scaled: 8 writes in a
1-second "minute"): the adapter's pacing gets no 403 and takes about the time the limit forces;
an adapter that believes in a larger budget is told to wait, waits, and still files it all."""

from __future__ import annotations

import math
import time

import pytest

from bot.adapters.github import WriteBudget
from bot.director.filing import PlanFiler
from tests.director.conftest import World
from tests.director.test_filing import EPIC, PLAN, WRITES, assert_filed_as_planned

PER_MINUTE = 8
MINUTE_S = 1.0


def limit(w: World) -> None:
    w.hub.faults.update(
        content_limits=True, content_per_minute=PER_MINUTE, content_minute_s=MINUTE_S
    )


def floor_s(writes: int) -> float:
    """What the limit alone forces: a full window's wait after every ``PER_MINUTE`` writes."""
    return MINUTE_S * math.floor((writes - 1) / PER_MINUTE)


@pytest.fixture
def write_budget() -> WriteBudget:
    return WriteBudget(per_minute=PER_MINUTE, minute_s=MINUTE_S, hour_s=60 * MINUTE_S)


@pytest.mark.slow
async def test_a_plan_larger_than_the_limit_is_filed_without_a_403_at_the_limits_pace(
    w: World,
) -> None:
    limit(w)
    started = time.monotonic()
    filed = await PlanFiler(w.gh, w.store).file(w.inst, EPIC, "p1", PLAN)
    took = time.monotonic() - started
    assert w.hub.faults.content_counts() == {"accepted": WRITES, "rejected": 0}
    assert floor_s(WRITES) <= took <= 1.3 * floor_s(WRITES) + 0.5
    await assert_filed_as_planned(w, "p1", filed)


@pytest.mark.slow
@pytest.mark.parametrize("write_budget", [WriteBudget(per_minute=80, minute_s=MINUTE_S)])
async def test_a_write_told_to_wait_waits_and_is_sent_again(w: World) -> None:
    limit(w)
    filed = await PlanFiler(w.gh, w.store).file(w.inst, EPIC, "p1", PLAN)
    counts = w.hub.faults.content_counts()
    assert counts["accepted"] == WRITES  # every write went through once
    assert counts["rejected"] >= WRITES // PER_MINUTE - 1  # it was told to wait, and waited
    await assert_filed_as_planned(w, "p1", filed)
