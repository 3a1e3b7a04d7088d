"""Every recorded webhook payload parses into its event's model, and the fields the bot uses
come out right. A field the event's model does not carry (an issue number on a push) reads here
as absent (``None`` or empty), which is what the handlers could read of it."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bot.events import MODELS, Envelope, parse_event
from bot.handlers import HANDLED_EVENTS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks"
WEBHOOK_SPEC = ROOT / "fakehub" / "spec" / "webhooks.api.github.com.json.gz"
ALL = sorted(FIXTURES.glob("*/*.json"))
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the head commit in GitHub's examples


#: What a field reads as on an event whose model does not carry it.
ABSENT: dict[str, Any] = {
    "issue_number": None,
    "is_pull_request": False,
    "label_name": None,
    "related_issues": (),
    "pull_number": None,
    "pull_merged": None,
    "review_id": None,
    "review_state": None,
    "review_by": None,
    "head_sha": None,
    "repos_added": (),
    "repos_removed": (),
    "comment_id": None,
    "comment_body": None,
    "comment_by": None,
    "comment_by_type": None,
    "via_app": False,
    "body_before": None,
}


class _Fields:
    """The parsed model's fields by name, absent ones as ``ABSENT`` says."""

    def __init__(self, parsed: Envelope) -> None:
        self.parsed = parsed

    def __getattr__(self, name: str) -> Any:
        if hasattr(self.parsed, name):
            return getattr(self.parsed, name)
        if name not in ABSENT:
            raise AttributeError(name)
        return ABSENT[name]


def _parse(event: str, payload: Any) -> Any:
    parsed = parse_event(event, payload)
    assert type(parsed) is MODELS.get(event, Envelope)
    return _Fields(parsed)


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def _repo_of(issue: Mapping[str, Any]) -> str:
    match = re.fullmatch(r"https://api\.github\.com/repos/([^/]+/[^/]+)", issue["repository_url"])
    assert match, issue["repository_url"]
    return match.group(1)


def test_fixtures_cover_every_event_and_action_we_handle() -> None:
    have = {(p.parent.name, p.stem.split("-")[0]) for p in ALL}
    want = {
        *(
            ("issues", a)
            for a in ("opened", "edited", "closed", "reopened", "labeled", "unlabeled")
        ),
        *(("pull_request", a) for a in ("opened", "synchronize", "closed", "reopened")),
        *(
            ("issue_dependencies", a)
            for a in (
                "blocked_by_added",
                "blocked_by_removed",
                "blocking_added",
                "blocking_removed",
            )
        ),
        *(
            ("sub_issues", a)
            for a in (
                "sub_issue_added",
                "sub_issue_removed",
                "parent_issue_added",
                "parent_issue_removed",
            )
        ),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
        ("pull_request_review", "submitted"),
        ("pull_request_review", "dismissed"),
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("status", "status"),
        ("push", "push"),
        ("merge_group", "checks_requested"),
        ("merge_group", "destroyed"),
        ("pull_request", "dequeued"),
        ("installation", "created"),
        ("installation", "deleted"),
        ("installation_repositories", "added"),
        ("installation_repositories", "removed"),
    }
    assert want <= have
    stems = {p.stem for p in FIXTURES.glob("pull_request/*.json")}
    assert {"closed-merged-from-schema", "closed-unmerged"} <= stems


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_fixture_parses_with_the_fields_the_bot_uses(path: Path) -> None:
    event = path.parent.name
    payload = _load(path)
    info = _parse(event, payload)

    assert info.action == payload.get("action")
    assert info.installation_id == (payload.get("installation") or {}).get("id")
    assert info.repo == (payload.get("repository") or {}).get("full_name")
    assert info.sender_login == (payload.get("sender") or {}).get("login")
    assert info.sender_type == (payload.get("sender") or {}).get("type")
    if info.sender_type is not None:
        assert info.sender_type in ("User", "Bot", "Organization")
    if event != "installation" and "repository" in payload:
        assert info.repo == "Codertocat/Hello-World"

    if event in ("issues", "issue_comment"):
        assert info.issue_number == payload["issue"]["number"] == 1
        assert info.is_pull_request is False
        assert info.label_name == ("bug" if info.action in ("labeled", "unlabeled") else None)
    else:
        assert info.issue_number is None
        assert info.label_name is None

    if event == "issue_comment":
        comment = payload["comment"]
        assert info.comment_id == comment["id"]
        assert info.comment_body == comment["body"]
        assert info.comment_by == comment["user"]["login"]
        assert info.comment_by_type == comment["user"]["type"]
        assert info.via_app is (comment["performed_via_github_app"] is not None)
        changes = payload.get("changes") or {}
        assert info.body_before == (changes.get("body") or {}).get("from")
    else:
        assert info.comment_id is None
        assert info.body_before is None

    if event == "issue_dependencies":
        blocked, blocking = payload["blocked_issue"], payload["blocking_issue"]
        assert info.related_issues == (
            (_repo_of(blocked), blocked["number"]),
            (_repo_of(blocking), blocking["number"]),
        )
        assert info.related_issues[0] == ("Codertocat/Hello-World", 3)
    elif event == "sub_issues":
        parent, child = payload["parent_issue"], payload["sub_issue"]
        assert info.related_issues == (
            (_repo_of(parent), parent["number"]),
            (_repo_of(child), child["number"]),
        )
    else:
        assert info.related_issues == ()

    if event == "pull_request":
        assert info.pull_number == payload["number"] == payload["pull_request"]["number"]
        assert info.pull_merged is payload["pull_request"]["merged"]
        assert info.pull_merged is (path.stem.startswith("closed-merged"))
        assert info.head_sha == HEAD
    elif event == "pull_request_review":
        assert info.pull_number == payload["pull_request"]["number"]
        assert info.head_sha == HEAD
        assert info.review_id == payload["review"]["id"]
        assert info.review_state == payload["review"]["state"]
        assert info.review_by == payload["review"]["user"]["login"]
    else:
        assert info.pull_number is None
        assert info.pull_merged is None
        assert info.review_id is None

    if event in ("check_run", "check_suite"):
        assert info.head_sha == payload[event]["head_sha"] == HEAD
    elif event == "status":
        assert info.head_sha == payload["sha"]
        assert info.head_sha is not None
        assert len(info.head_sha) == 40
    elif event == "push":
        assert info.head_sha == payload["after"]
        assert info.head_sha is not None
        assert len(info.head_sha) == 40
    elif event == "merge_group":
        group = payload["merge_group"]
        assert info.head_sha == group["head_sha"]
        assert group["head_ref"].endswith(f"/pr-{2}-{HEAD}")
        assert info.reason == payload.get("reason")
    elif event not in ("pull_request", "pull_request_review"):
        assert info.head_sha is None

    if event == "installation":
        names = tuple(r["full_name"] for r in payload["repositories"])
        assert names  # every installation example lists its repositories
        assert info.repos_added == (names if info.action == "created" else ())
        assert info.repos_removed == (names if info.action == "deleted" else ())
    elif event == "installation_repositories":
        added = tuple(r["full_name"] for r in payload["repositories_added"])
        removed = tuple(r["full_name"] for r in payload["repositories_removed"])
        assert (info.repos_added, info.repos_removed) == (added, removed)
        assert (added if info.action == "added" else removed) != ()
    else:
        assert info.repos_added == ()
        assert info.repos_removed == ()


# Exact values of a few recordings, so the generic checks above cannot all be wrong together.
EXACT: dict[str, dict[str, Any]] = {
    "issues/labeled": {
        "action": "labeled",
        "installation_id": None,
        "issue_number": 1,
        "label_name": "bug",
        "sender_login": "Codertocat",
    },
    "issues/reopened": {"installation_id": 1, "issue_number": 1, "label_name": None},
    "pull_request/closed-merged-from-schema": {
        "pull_number": 2,
        "pull_merged": True,
        "head_sha": HEAD,
    },
    "pull_request/closed-unmerged": {"pull_number": 2, "pull_merged": False},
    "pull_request_review/submitted-changes-requested-from-schema": {
        "action": "submitted",
        "installation_id": 1,
        "pull_number": 2,
        "review_id": 237895671,
        "review_state": "changes_requested",
        "review_by": "Codertocat",
    },
    "push/push": {"head_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "action": None},
    "installation/created": {
        "installation_id": 957387,
        "repo": None,
        "repos_added": ("Codertocat/Hello-World",),
        "repos_removed": (),
    },
    "installation_repositories/added": {
        "repos_added": ("Codertocat/Space",),
        "repos_removed": (),
    },
    "installation_repositories/removed": {
        "installation_id": 2,
        "repos_added": (),
        "repos_removed": ("octocat/Hello-World",),
    },
    "issue_dependencies/blocked_by_added-cross-repo-from-schema": {
        "related_issues": (("Codertocat/Hello-World", 3), ("Codertocat/platform", 7)),
    },
    "sub_issues/sub_issue_added-cross-repo-from-schema": {
        "related_issues": (("Codertocat/Hello-World", 3), ("Codertocat/platform", 7)),
    },
    "sub_issues/parent_issue_removed-no-repository-from-schema": {
        "repo": None,
        "sender_login": None,
        "related_issues": (("Codertocat/Hello-World", 3), ("Codertocat/Hello-World", 2)),
    },
    "star/created": {"action": "created", "repo": "Codertocat/Hello-World"},
    "issue_comment/edited-from-schema": {
        "action": "edited",
        "issue_number": 1,
        "comment_id": 492700400,
        "comment_body": "/stoneforge replan",
        "comment_by": "Codertocat",
        "comment_by_type": "User",
        "via_app": False,
        "body_before": "/stoneforge plan keep the API stable",
    },
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_recorded_payload_exact_values(name: str) -> None:
    path = FIXTURES / f"{name}.json"
    info = _parse(path.parent.name, _load(path))
    assert {key: getattr(info, key) for key in EXACT[name]} == EXACT[name]


@cache
def _spec_registry() -> Registry[Any]:
    spec = json.loads(gzip.decompress(WEBHOOK_SPEC.read_bytes()))
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    return Registry().with_resource("urn:webhooks", resource)


@pytest.mark.parametrize("path", [p for p in ALL if p.stem.endswith("-from-schema")], ids=_id)
def test_hand_built_fixture_matches_the_webhooks_schema(path: Path) -> None:
    """Fixtures built by hand (no published example exists) must satisfy GitHub's schema."""
    payload = _load(path)
    name = f"webhook-{path.parent.name}-{payload['action']}".replace("_", "-")
    schema = {"$ref": f"urn:webhooks#/components/schemas/{name}"}
    validator = jsonschema.Draft202012Validator(schema, registry=_spec_registry())
    errors = [f"{list(e.absolute_path)}: {e.message[:120]}" for e in validator.iter_errors(payload)]
    assert errors == []
    # and the validator does reject a payload that is missing what the schema requires
    assert not validator.is_valid({"action": payload["action"]})


# --- odd shapes: parse_event never raises ---------------------------------------------------

KNOWN = (*sorted(HANDLED_EVENTS), "installation", "installation_repositories")


@pytest.mark.parametrize("event", [*KNOWN, "star", "ping"])
def test_empty_payload_gives_empty_info(event: str) -> None:
    assert parse_event(event, {}) == MODELS.get(event, Envelope)()


def test_missing_sender_and_installation_and_null_label() -> None:
    payload = _load(FIXTURES / "issues" / "labeled.json")
    payload.pop("sender")
    payload.pop("installation", None)
    payload["label"] = None
    info = _parse("issues", payload)
    assert (info.sender_login, info.sender_type, info.installation_id, info.label_name) == (
        None,
        None,
        None,
        None,
    )
    assert (info.action, info.repo, info.issue_number) == ("labeled", "Codertocat/Hello-World", 1)


@pytest.mark.parametrize("event", KNOWN)
def test_wrong_types_become_none_instead_of_raising(event: str) -> None:
    payload = {
        "action": ["labeled"],
        "installation": "957387",
        "repository": {"full_name": 12},
        "sender": None,
        "issue": {"number": "not a number", "pull_request": "yes"},
        "label": "agent-ready",
        "blocked_issue": {"number": None},
        "blocking_issue": [],
        "parent_issue": 5,
        "sub_issue": {"repository_url": 7, "number": 4},
        "number": {"n": 1},
        "pull_request": {"merged": "perhaps", "head": "abc", "number": 9},
        "check_run": None,
        "check_suite": [],
        "sha": 1234,
        "after": None,
        "repositories": "all",
        "repositories_added": [None, "x", {"full_name": 5}, {"full_name": "o/r"}],
        "repositories_removed": {"full_name": "o/r"},
        "review": {"id": "one", "state": 3, "user": "lead"},
    }
    info = _parse(event, payload)
    assert (info.action, info.installation_id, info.repo, info.sender_login) == (
        None,
        None,
        None,
        None,
    )
    assert info.issue_number is None
    assert info.label_name is None
    assert info.is_pull_request is False
    assert info.head_sha is None
    assert info.pull_merged is None
    pulls = ("pull_request", "pull_request_review")
    assert info.pull_number == (9 if event in pulls else None)  # falls back to PR number
    assert info.review_id is None
    assert info.related_issues == ()  # sub_issue #4 has no repo anywhere: left out
    assert info.repos_added == (("o/r",) if event == "installation_repositories" else ())
    assert info.repos_removed == ()


@pytest.mark.parametrize("payload", [None, [], "text", 42])
def test_payload_that_is_not_an_object(payload: Any) -> None:
    assert parse_event("issues", payload) == MODELS["issues"]()


def test_unknown_event_carries_only_the_generic_fields() -> None:
    payload = _load(FIXTURES / "issues" / "labeled.json")
    payload["installation"] = {"id": 99}
    info = parse_event("issues_but_not_really", payload)
    assert type(info) is Envelope
    assert (info.action, info.installation_id, info.repo, info.sender_login, info.sender_type) == (
        "labeled",
        99,
        "Codertocat/Hello-World",
        "Codertocat",
        "User",
    )


def test_issue_comment_on_a_pull_request() -> None:
    payload = {
        "action": "created",
        "issue": {"number": 8, "pull_request": {"url": "https://api.github.com/repos/o/r/pulls/8"}},
        "sender": {"login": "stoneforge[bot]", "type": "Bot"},
        "installation": {"id": 3},
        "repository": {"full_name": "o/r"},
    }
    info = _parse("issue_comment", payload)
    assert (info.issue_number, info.is_pull_request, info.sender_type) == (8, True, "Bot")
    payload["issue"] = {"number": 8, "pull_request": None}
    assert _parse("issue_comment", payload).is_pull_request is False


def test_related_issue_repo_falls_back_to_the_issue_repo_object_then_the_delivery() -> None:
    payload = {
        "action": "blocked_by_added",
        "repository": {"full_name": "o/app"},
        "blocked_issue": {"number": 3},  # no repository_url: the delivery's repository
        "blocking_issue": {"number": 7},  # no repository_url: blocking_issue_repo
        "blocking_issue_repo": {"full_name": "o/lib"},
    }
    info = _parse("issue_dependencies", payload)
    assert info.related_issues == (("o/app", 3), ("o/lib", 7))
    payload["blocking_issue"] = {
        "number": 7,
        "repository_url": "http://127.0.0.1:8080/api/v3/repos/other/thing",
    }
    info = _parse("issue_dependencies", payload)
    assert info.related_issues == (("o/app", 3), ("other/thing", 7))
    del payload["repository"]
    assert _parse("issue_dependencies", payload).related_issues == (("other/thing", 7),)


def test_installation_actions_other_than_created_and_deleted_change_no_repositories() -> None:
    payload = _load(FIXTURES / "installation" / "created.json")
    payload["action"] = "suspend"
    info = _parse("installation", payload)
    assert (info.repos_added, info.repos_removed) == ((), ())
    assert info.installation_id == 957387


def test_sub_issue_repo_falls_back_to_the_sub_issue_repo_object() -> None:
    payload = {
        "action": "sub_issue_added",
        "parent_issue": {"number": 1, "repository_url": "https://api.github.com/repos/o/app"},
        "sub_issue": {"number": 2},
        "sub_issue_repo": {"full_name": "o/lib"},
    }
    assert _parse("sub_issues", payload).related_issues == (("o/app", 1), ("o/lib", 2))
    payload.update(action="parent_issue_added", sub_issue_repo=None)
    payload["parent_issue"] = {"number": 1}
    payload["parent_issue_repo"] = {"full_name": "o/app"}
    payload["repository"] = {"full_name": "o/lib"}
    assert _parse("sub_issues", payload).related_issues == (("o/app", 1), ("o/lib", 2))
