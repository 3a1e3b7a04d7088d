"""The adapter's write pacing (bot/adapters/github/pacing.py) on a fake clock: sliding minute and
hour windows, reads unpaced, a ``retry-after`` waited out and the write sent
again, and given up loudly after ``max_retries``."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bot.adapters.github.pacing import PacedTransport, WriteBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def paced(
    budget: WriteBudget, answer: Callable[[httpx.Request], httpx.Response] | None = None
) -> tuple[PacedTransport, FakeTime, list[tuple[float, str, str]]]:
    t = FakeTime()
    sent: list[tuple[float, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((t.now, request.method, request.url.path))
        return answer(request) if answer else httpx.Response(201, json={})

    inner = httpx.MockTransport(handler)
    return PacedTransport(inner, budget, clock=t.clock, sleep=t.sleep), t, sent


async def send(
    transport: PacedTransport, method: str, path: str = "/repos/o/r/issues", token: str = "a"
) -> httpx.Response:
    headers = {"authorization": f"token {token}"}
    request = httpx.Request(method, f"https://api.test{path}", headers=headers, json={})
    return await transport.handle_async_request(request)


async def test_writes_beyond_the_minute_budget_wait_for_the_window_to_slide() -> None:
    transport, _, sent = paced(WriteBudget(per_minute=4))
    for _ in range(10):
        await send(transport, "POST")
    assert [at for at, _, _ in sent] == [0.0] * 4 + [60.0] * 4 + [120.0] * 2


async def test_reads_and_token_creation_are_never_paced() -> None:
    transport, t, sent = paced(WriteBudget(per_minute=1))
    await send(transport, "POST")
    for _ in range(5):
        await send(transport, "GET")
    await send(transport, "POST", "/app/installations/7/access_tokens")
    assert t.now == 0.0
    assert len(sent) == 7


async def test_the_hour_budget_holds_when_the_minute_budget_would_not() -> None:
    transport, _, sent = paced(WriteBudget(per_minute=100, per_hour=3))
    for path in ("/repos/o/r/issues", "/repos/o/r/issues/1/comments", "/repos/o/r/pulls"):
        await send(transport, "POST", path)
    await send(transport, "POST", "/repos/o/r/issues/2/sub_issues")
    assert [at for at, _, _ in sent] == [0.0, 0.0, 0.0, 3600.0]


async def test_only_content_creation_is_paced() -> None:
    # Labels, reactions, check runs, edits, merges and deletions are no content: pacing them
    # made bench/dispatch.py's p50 54 s (sixty tasks' labels queued behind 80 a minute).
    transport, t, sent = paced(WriteBudget(per_minute=1))
    await send(transport, "POST", "/repos/o/r/issues/1/comments")
    for method, path in [
        ("POST", "/repos/o/r/issues/1/labels"),
        ("DELETE", "/repos/o/r/issues/1/labels/x"),
        ("POST", "/repos/o/r/issues/comments/5/reactions"),
        ("POST", "/repos/o/r/check-runs"),
        ("PATCH", "/repos/o/r/issues/comments/5"),
        ("PATCH", "/repos/o/r/issues/1"),
        ("PUT", "/repos/o/r/pulls/3/merge"),
        ("PUT", "/repos/o/r/pulls/3/update-branch"),
    ]:
        await send(transport, method, path)
    assert t.now == 0.0
    await send(transport, "POST", "/repos/o/r/issues/1/dependencies/blocked_by")
    assert t.now == 60.0
    assert len(sent) == 10


async def test_a_new_token_of_the_installation_spends_the_same_budget() -> None:
    transport, t, _ = paced(WriteBudget(per_minute=1))
    await send(transport, "POST", token="first")
    await send(transport, "POST", token="renewed")
    assert t.now == 60.0


async def test_a_secondary_limit_is_waited_out_and_the_write_sent_again() -> None:
    answers = iter([httpx.Response(403, headers={"retry-after": "7"}, json={})])

    def answer(_: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(201, json={"number": 1}))

    transport, t, sent = paced(WriteBudget(), answer)
    response = await send(transport, "POST")
    assert response.status_code == 201
    assert t.slept == [7.0]
    assert [at for at, _, _ in sent] == [0.0, 7.0]


async def test_a_write_still_refused_after_its_retries_gives_the_refusal_back() -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "2"}, json={"message": "slow down"})

    transport, t, sent = paced(WriteBudget(max_retries=3), answer)
    response = await send(transport, "POST")
    assert response.status_code == 429
    assert len(sent) == 4
    assert t.slept == [2.0, 2.0, 2.0]


async def test_a_plain_403_is_no_reason_to_wait() -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "Resource not accessible by integration"})

    transport, t, sent = paced(WriteBudget(), answer)
    assert (await send(transport, "POST")).status_code == 403
    assert (len(sent), t.slept) == (1, [])
