"""The GitHub adapter against fakehub: paginated lists, label history, refs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.adapters.github import GitHubAdapter, GitHubError
from bot.adapters.github.gate import code_owner_rules
from bot.core.model import IssueRef
from fakehub.server import FakeHub

REF = IssueRef("octo/app", 1)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeHub, GitHubAdapter, int, str]]:
    with FakeHub(tmp_path / "hub") as hub:
        lead = hub.create_user("lead")
        hub.create_user("octo", type="Organization")
        hub.create_repo("octo", "app", {"README.md": "x\n"})
        hub.set_permission("octo/app", "lead", "admin")
        app = hub.create_app(
            slug="sf", webhook_url=None, webhook_secret="s", events=[],
            permissions={"issues": "write", "contents": "read", "pull_requests": "write",
                         "administration": "read", "checks": "write"},
        )  # fmt: skip
        inst = hub.install_app(app.id, "octo", ["app"])
        gh = GitHubAdapter(app_id=app.id, private_key=app.private_key_pem, base_url=hub.api_url)
        try:
            yield hub, gh, inst, lead.token
        finally:
            await gh.aclose()


def _api(hub: FakeHub, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=hub.api_url, headers={"Authorization": f"token {token}"}, timeout=10
    )


async def test_comments_are_read_past_the_first_page(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    with _api(hub, token) as api:
        api.post("/repos/octo/app/issues", json={"title": "Long thread"}).raise_for_status()
        for n in range(105):
            url = "/repos/octo/app/issues/1/comments"
            api.post(url, json={"body": f"comment {n}"}).raise_for_status()
    comments = await gh.comments(inst, REF)
    assert [c.body for c in comments] == [f"comment {n}" for n in range(105)]


async def test_label_actor_knows_when_the_label_was_put_back(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    with _api(hub, token) as api:
        api.post("/repos/octo/app/issues", json={"title": "Retry me"}).raise_for_status()
        labels = "/repos/octo/app/issues/1/labels"
        api.post(labels, json={"labels": ["agent-ready"]}).raise_for_status()
        first = await gh.label_actor(inst, REF, "agent-ready")
        api.delete(f"{labels}/agent-ready").raise_for_status()
        api.post(labels, json={"labels": ["agent-ready"]}).raise_for_status()
    again = await gh.label_actor(inst, REF, "agent-ready")
    assert first is not None
    assert again is not None
    assert (first.login, first.type, first.removed_at) == ("lead", "User", None)
    assert again.removed_at is not None
    assert first.at <= again.removed_at <= again.at
    assert await gh.label_actor(inst, REF, "other") is None


async def test_branch_sha_reads_the_ref_also_for_a_branch_with_slashes(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, _ = world
    main = hub.git.ref_sha("octo/app", "main")
    assert main
    assert await gh.branch_sha(inst, "octo/app", "main") == main
    hub.git.set_branch("octo/app", "release/1.0", main)
    assert await gh.branch_sha(inst, "octo/app", "release/1.0") == main
    with pytest.raises(GitHubError) as info:
        await gh.branch_sha(inst, "octo/app", "nope")
    assert info.value.status == 404


async def test_required_checks_join_classic_protection_and_active_rulesets(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    assert await gh.required_checks(inst, "octo/app", "release") == ()  # neither: nothing
    hub.protect("octo/app", "main", ["ci"])
    rule = {
        "type": "required_status_checks",
        "parameters": {
            "strict_required_status_checks_policy": False,
            "required_status_checks": [{"context": "lint"}, {"context": "ci"}],
        },
    }
    with _api(hub, token) as api:
        for name, enforcement in (("gate", "active"), ("trial", "evaluate")):
            api.post(
                "/repos/octo/app/rulesets",
                json={
                    "name": name,
                    "enforcement": enforcement,
                    "conditions": {"ref_name": {"include": ["refs/heads/main"], "exclude": []}},
                    "rules": [rule if name == "gate" else {**rule, "parameters": {
                        **rule["parameters"], "required_status_checks": [{"context": "slow"}]}}],
                },
            ).raise_for_status()  # fmt: skip
    assert await gh.required_checks(inst, "octo/app", "main") == ("ci", "lint")


async def test_a_check_run_is_created_then_updated_in_place(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, _ = world
    sha = hub.git.ref_sha("octo/app", "main")
    assert sha
    run_id = await gh.write_check(
        inst, "octo/app", sha, name="stoneforge", conclusion=None, title="waiting", summary="s"
    )
    again = await gh.write_check(
        inst, "octo/app", sha, name="stoneforge", conclusion="success", title="merged",
        summary="s", run_id=run_id,
    )  # fmt: skip
    runs = hub.state.runs_for(hub.state.repo("octo", "app"), sha)
    assert again == run_id
    assert [(r.name, r.status, r.conclusion, r.output["title"]) for r in runs] == [
        ("stoneforge", "completed", "success", "merged")
    ]


async def test_status_comment_is_edited_by_its_remembered_id_and_remade_if_deleted(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    seen: list[tuple[str, str]] = []
    send = gh._transport.handle_async_request

    async def recording(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return await send(request)

    gh._transport.handle_async_request = recording  # type: ignore[method-assign]
    with _api(hub, token) as api:
        api.post("/repos/octo/app/issues", json={"title": "Task"}).raise_for_status()
        await gh.upsert_comment(inst, REF, "<!-- m -->", "first")
        await gh.upsert_comment(inst, REF, "<!-- m -->", "second")
        listed = [p for m, p in seen if m == "GET" and p.endswith("/issues/1/comments")]
        assert len(listed) == 1  # the edit went straight to the comment
        bodies = [c["body"] for c in api.get("/repos/octo/app/issues/1/comments").json()]
        assert bodies == ["second\n\n<!-- m -->"]
        comment_id = api.get("/repos/octo/app/issues/1/comments").json()[0]["id"]
        api.delete(f"/repos/octo/app/issues/comments/{comment_id}").raise_for_status()
        await gh.upsert_comment(inst, REF, "<!-- m -->", "third")
        bodies = [c["body"] for c in api.get("/repos/octo/app/issues/1/comments").json()]
        assert bodies == ["third\n\n<!-- m -->"]


async def test_issue_labels_are_the_labels_on_the_issue_now(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    with _api(hub, token) as api:
        api.post("/repos/octo/app/issues", json={"title": "T", "labels": ["a", "b"]})
        await gh.remove_label(inst, REF, "a")
        await gh.add_labels(inst, REF, ["stoneforge:queued"])
    assert await gh.issue_labels(inst, REF) == {"b", "stoneforge:queued"}


async def test_a_reply_is_a_new_comment_and_the_eyes_reaction_is_made_once(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    with _api(hub, token) as api:
        api.post("/repos/octo/app/issues", json={"title": "Commanded"}).raise_for_status()
        said = api.post("/repos/octo/app/issues/1/comments", json={"body": "/stoneforge status"})
        said.raise_for_status()
    comment_id = int(said.json()["id"])
    await gh.react_to_comment(inst, "octo/app", comment_id, "eyes")
    await gh.react_to_comment(inst, "octo/app", comment_id, "eyes")  # GitHub answers 200
    first = await gh.reply(inst, REF, "one")
    second = await gh.reply(inst, REF, "two")
    with _api(hub, token) as api:
        reactions = api.get(f"/repos/octo/app/issues/comments/{comment_id}").json()["reactions"]
        bodies = [c["body"] for c in api.get("/repos/octo/app/issues/1/comments").json()]
    assert reactions["eyes"] == 1
    assert second > first > comment_id
    assert bodies == ["/stoneforge status", "one", "two"]
    with pytest.raises(ValueError, match="not a GitHub reaction"):
        await gh.react_to_comment(inst, "octo/app", comment_id, "thumbs")


async def test_rule_flags_name_a_merge_queue_and_code_owner_reviews_from_either_source(
    world: tuple[FakeHub, GitHubAdapter, int, str],
) -> None:
    hub, gh, inst, token = world
    hub.protect("octo/app", "main", [], code_owner_reviews=True)  # classic protection
    with _api(hub, token) as api:
        api.post(
            "/repos/octo/app/rulesets",
            json={
                "name": "queue",
                "enforcement": "active",
                "conditions": {"ref_name": {"include": ["~ALL"], "exclude": []}},
                "rules": [{"type": "merge_queue", "parameters": {"merge_method": "MERGE"}}],
            },
        ).raise_for_status()
    assert await gh.rule_flags(inst, "octo/app", "main") == {"merge_queue", "code_owner_review"}
    assert await gh.rule_flags(inst, "octo/app", "other") == {"merge_queue"}
    assert await code_owner_rules(gh, inst, "octo/app", "main") == ()  # no CODEOWNERS file
