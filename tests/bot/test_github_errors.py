"""The GitHub adapter on GitHub's awkward answers, which fakehub does not give: a gateway's HTML
page, a merge that answers 500 but merged, rate limits with ``retry-after``, a body that is not
JSON. GitHub is mocked at the HTTP layer (respx), so githubkit, its retry policy and the
adapter's classification (``GitHubError``) all run as in production.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.adapters.github import GitHubAdapter, GitHubError, MergeOutcome
from bot.core.model import IssueRef

API = "https://ghe.test/api/v3"
INST = 7
REF = IssueRef("octo/app", 1)
HEAD = "a" * 40
MERGED = "b" * 40
ISSUE = {"number": 1, "id": 101, "title": "One", "body": "", "state": "open", "labels": []}
GATEWAY_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body{font:13px Arial}"
    + "x" * 400
    + "</style></head><body><h1>Unicorn!</h1></body></html>"
)


@pytest.fixture(scope="module")
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def github() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        router.post(f"/app/installations/{INST}/access_tokens").respond(
            201, json={"token": "ghs_installation", "expires_at": "2099-01-01T00:00:00Z"}
        )
        yield router


@pytest.fixture
async def gh(private_key: str, github: respx.MockRouter) -> AsyncIterator[GitHubAdapter]:
    adapter = GitHubAdapter(app_id=1, private_key=private_key, base_url=API, retry_delay_s=0.0)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def _pull(*, merged: bool) -> dict[str, object]:
    return {
        "number": 5,
        "state": "closed" if merged else "open",
        "merged": merged,
        "merge_commit_sha": MERGED if merged else "c" * 40,
        "head": {"sha": HEAD, "ref": "stoneforge/issue-1"},
        "base": {"ref": "main"},
        "mergeable": None if merged else True,
        "mergeable_state": "unknown" if merged else "clean",
    }


async def _merge(gh: GitHubAdapter) -> MergeOutcome:
    return await gh.merge(INST, "octo/app", 5, sha=HEAD, method="squash", title="One (#5)")


# --- a gateway's HTML page -------------------------------------------------------------------


async def test_a_502_with_an_html_page_is_retried_then_a_github_error_without_markup(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    route = github.get("/repos/octo/app/issues/1").respond(
        502, text=GATEWAY_PAGE, headers={"content-type": "text/html"}
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert caught.value.status == 502
    assert route.call_count == 3  # the first try and two retries
    assert "<" not in caught.value.message
    assert caught.value.message == "Bad Gateway (an HTML page, not GitHub's JSON)"


async def test_a_502_then_an_answer_is_the_answer(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.get("/repos/octo/app/issues/1").mock(
        side_effect=[
            httpx.Response(502, text=GATEWAY_PAGE, headers={"content-type": "text/html"}),
            httpx.Response(200, json=ISSUE),
        ]
    )
    info = await gh.issue(INST, REF)
    assert info is not None
    assert info.title == "One"


# --- a merge that answers 500 but merged ---------------------------------------------------


async def test_a_500_on_merge_that_merged_is_reported_merged(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    # GitHub merged, then failed to answer; its retry is refused: the pull request is merged.
    merge = github.put("/repos/octo/app/pulls/5/merge").mock(
        side_effect=[
            httpx.Response(500, json={"message": "Server Error"}),
            httpx.Response(405, json={"message": "Pull Request is not mergeable"}),
        ]
    )
    read = github.get("/repos/octo/app/pulls/5").respond(200, json=_pull(merged=True))
    outcome = await _merge(gh)
    assert (merge.call_count, read.call_count) == (2, 1)
    assert (outcome.merged, outcome.sha) == (True, MERGED)


async def test_a_merge_that_never_answered_but_merged_is_reported_merged(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    merge = github.put("/repos/octo/app/pulls/5/merge").respond(502, text=GATEWAY_PAGE)
    github.get("/repos/octo/app/pulls/5").respond(200, json=_pull(merged=True))
    outcome = await _merge(gh)
    assert merge.call_count == 3
    assert (outcome.merged, outcome.sha) == (True, MERGED)


async def test_a_500_on_merge_that_did_not_merge_stays_an_error(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.put("/repos/octo/app/pulls/5/merge").respond(500, json={"message": "Server Error"})
    read = github.get("/repos/octo/app/pulls/5").respond(200, json=_pull(merged=False))
    with pytest.raises(GitHubError) as caught:
        await _merge(gh)
    assert (caught.value.status, caught.value.message) == (500, "Server Error")
    assert read.call_count == 1


async def test_a_refused_merge_of_an_open_pull_request_is_a_refusal(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.put("/repos/octo/app/pulls/5/merge").respond(
        405, json={"message": "Pull Request is not mergeable"}
    )
    github.get("/repos/octo/app/pulls/5").respond(200, json=_pull(merged=False))
    outcome = await _merge(gh)
    assert outcome == MergeOutcome(False, None, 405, "Pull Request is not mergeable")


async def test_a_refused_merge_whose_read_back_fails_is_still_a_refusal(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.put("/repos/octo/app/pulls/5/merge").respond(
        409, json={"message": "Head branch was modified. Review and try the merge again."}
    )
    github.get("/repos/octo/app/pulls/5").respond(503, text="upstream connect error")
    outcome = await _merge(gh)
    assert (outcome.merged, outcome.status) == (False, 409)


async def test_a_merge_that_answers_merged_reads_nothing_back(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.put("/repos/octo/app/pulls/5/merge").respond(
        200, json={"sha": MERGED, "merged": True, "message": "Pull Request successfully merged"}
    )
    read = github.get("/repos/octo/app/pulls/5").respond(200, json=_pull(merged=True))
    outcome = await _merge(gh)
    assert outcome == MergeOutcome(True, MERGED, 200, "Pull Request successfully merged")
    assert read.call_count == 0


# --- rate limits -------------------------------------------------------------------------------


async def test_a_secondary_rate_limit_is_not_retried_and_says_how_long_to_wait(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    route = github.get("/repos/octo/app/issues/1").respond(
        403, json={"message": message}, headers={"retry-after": "60"}
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert route.call_count == 1  # GitHub asks for 60 s of quiet: no retry inside the request
    assert (caught.value.status, caught.value.message) == (403, message)
    assert caught.value.retry_after == 60.0


async def test_a_429_with_retry_after_is_a_rate_limit_too(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    route = github.get("/repos/octo/app/issues/1").respond(
        429, json={"message": "Too many requests"}, headers={"retry-after": "5"}
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert route.call_count == 1
    assert (caught.value.status, caught.value.retry_after) == (429, 5.0)


async def test_an_exhausted_primary_limit_waits_until_its_reset(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    reset = int(time.time()) + 120
    route = github.get("/repos/octo/app/issues/1").respond(
        403,
        json={"message": "API rate limit exceeded for installation ID 7."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert route.call_count == 1
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


async def test_a_plain_403_is_no_rate_limit(gh: GitHubAdapter, github: respx.MockRouter) -> None:
    route = github.get("/repos/octo/app/issues/1").respond(
        403, json={"message": "Resource not accessible by integration"}
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert route.call_count == 1
    assert (caught.value.status, caught.value.retry_after) == (403, None)


# --- an answer that is not JSON --------------------------------------------------------------


async def test_a_malformed_json_answer_is_a_github_error(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.get("/repos/octo/app/issues/1").respond(
        200, text='{"number": 1, "title": ', headers={"content-type": "application/json"}
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert caught.value.status == 200
    assert "malformed JSON" in caught.value.message


async def test_a_malformed_page_of_a_list_is_a_github_error(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.get("/repos/octo/app/issues/1/comments").respond(
        200, text="[{]", headers={"content-type": "application/json"}
    )
    with pytest.raises(GitHubError, match="malformed JSON"):
        await gh.comments(INST, REF)


async def test_an_error_with_a_plain_text_body_keeps_its_text(
    gh: GitHubAdapter, github: respx.MockRouter
) -> None:
    github.get("/repos/octo/app/issues/1").respond(
        404, text="Not Found\n", headers={"content-type": "text/plain"}
    )
    assert await gh.issue(INST, REF) is None  # a 404 is still a 404
    github.get("/repos/octo/app/issues/1").respond(
        400, text="bad\n  request", headers={"content-type": "text/plain"}
    )
    with pytest.raises(GitHubError) as caught:
        await gh.issue(INST, REF)
    assert caught.value.message == "Bad Request: bad request"
