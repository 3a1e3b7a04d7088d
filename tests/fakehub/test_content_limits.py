"""GitHub's limits as fakehub enforces them: content creation per credential when the switch is
on (403 with ``retry-after`` and GitHub's message), 100 sub-issues per parent and 50
dependencies per relationship type (422)."""

from __future__ import annotations

import httpx

from fakehub.rest.limits import ContentLimiter
from fakehub.server import FakeHub
from tests.fakehub.conftest import FULL
from tests.harness import World


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_minute_and_hour_windows_slide_per_credential() -> None:
    clock = Clock()
    limiter = ContentLimiter(clock)

    def admit(key: str = "a") -> int | None:
        return limiter.admit(key, per_minute=3, per_hour=5, minute_s=60)

    assert [admit() for _ in range(4)] == [None, None, None, 60]
    assert admit("b") is None  # another credential, another budget
    clock.now = 59.5
    assert admit() == 1  # half a second left: GitHub sends whole seconds
    clock.now = 60.0
    assert [admit(), admit(), admit()] == [None, None, 3540]  # five this hour
    clock.now = 3600.0
    assert admit() is None
    assert limiter.counts() == {"accepted": 7, "rejected": 3}


def test_content_creation_beyond_the_limit_is_refused_like_github(world: World) -> None:
    world.hub.faults.update(content_limits=True, content_per_minute=3, content_minute_s=60)
    try:
        with world.client() as bot:
            made = [bot.post(f"/repos/{FULL}/issues", json={"title": f"T{i}"}) for i in range(4)]
            read = bot.get(f"/repos/{FULL}/issues")
        assert [r.status_code for r in made] == [201, 201, 201, 403]
        assert "exceeded a secondary rate limit" in made[3].json()["message"]
        assert 55 <= int(made[3].headers["retry-after"]) <= 60
        assert read.status_code == 200  # reads are not content
        assert world.hub.faults.content_counts() == {"accepted": 3, "rejected": 1}
        with httpx.Client(base_url=world.hub.url) as admin:
            assert admin.get("/_fakehub/limits").json() == {"accepted": 3, "rejected": 1}
        with world.api() as person:  # the maintainer's own budget
            assert person.post(f"/repos/{FULL}/issues", json={"title": "P"}).status_code == 201
    finally:
        world.hub.faults.update(content_limits=False)
    with world.client() as bot:
        assert bot.post(f"/repos/{FULL}/issues", json={"title": "off"}).status_code == 201


def test_limits_are_off_by_default(hub: FakeHub) -> None:
    assert hub.faults.content_limits is False


def _issues(api: httpx.Client, count: int) -> list[dict[str, object]]:
    made = [api.post(f"/repos/{FULL}/issues", json={"title": f"I{i}"}) for i in range(count)]
    return [r.raise_for_status().json() for r in made]


def test_a_parent_takes_at_most_100_sub_issues(world: World) -> None:
    with world.api() as api:
        parent, *children = _issues(api, 102)
        url = f"/repos/{FULL}/issues/{parent['number']}/sub_issues"
        added = [api.post(url, json={"sub_issue_id": c["id"]}).status_code for c in children]
        assert added == [201] * 100 + [422]
        assert len(api.get(url, params={"per_page": 100}).json()) == 100


def test_an_issue_is_blocked_by_and_blocks_at_most_50(world: World) -> None:
    def blocked_by(number: object, blocker: dict[str, object]) -> int:
        url = f"/repos/{FULL}/issues/{number}/dependencies/blocked_by"
        return api.post(url, json={"issue_id": blocker["id"]}).status_code

    with world.api() as api:
        blocked, blocking, *others = _issues(api, 53)
        assert [blocked_by(blocked["number"], o) for o in others] == [201] * 50 + [422]
        assert [blocked_by(o["number"], blocking) for o in others] == [201] * 50 + [422]


def test_every_token_of_an_installation_spends_its_one_budget(world: World) -> None:
    world.hub.faults.update(content_limits=True, content_per_minute=2, content_minute_s=60)
    try:
        with world.client() as bot:
            for title in ("A", "B"):
                bot.post(f"/repos/{FULL}/issues", json={"title": title}).raise_for_status()
        with world.client(world.installation_token()) as renewed:
            refused = renewed.post(f"/repos/{FULL}/issues", json={"title": "C"})
        assert refused.status_code == 403
    finally:
        world.hub.faults.update(content_limits=False)
