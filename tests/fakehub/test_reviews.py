"""Pull request reviews in fakehub: submitting, listing, inline comments, dismissal, webhooks."""

from __future__ import annotations

from tests.fakehub.conftest import FULL
from tests.harness import Receiver, World, git


def _open_pr(w: World, files: dict[str, str]) -> tuple[int, str]:
    work = w.tmp / "clone-review"
    git(w.tmp, "clone", "-q", f"{w.hub.url}/{FULL}.git", str(work), token=w.bot_token)
    git(work, "config", "user.name", "Agent")
    git(work, "config", "user.email", "agent@example.com")
    sha = w.push_branch(work, "sf/review", files, "work")
    with w.client() as bot:
        r = bot.post(
            f"/repos/{FULL}/pulls", json={"title": "Work", "head": "sf/review", "base": "main"}
        )
    assert r.status_code == 201, r.text
    return int(r.json()["number"]), sha


def test_request_changes_with_an_inline_comment_is_listed_and_delivered(
    world: World, receiver: Receiver
) -> None:
    number, head = _open_pr(world, {"app/users.py": "USERS = []\n"})
    with world.client(world.maintainer.token) as mona:
        r = mona.post(
            f"/repos/{FULL}/pulls/{number}/reviews",
            json={
                "event": "REQUEST_CHANGES",
                "body": "Use a tuple.",
                "comments": [{"path": "app/users.py", "line": 1, "body": "Immutable, please."}],
            },
        )
        assert r.status_code == 200, r.text
        review = r.json()
        assert review["state"] == "CHANGES_REQUESTED"
        assert review["commit_id"] == head
        assert review["user"]["login"] == "mona"
        assert review["author_association"] == "COLLABORATOR"
        assert (
            mona.post(f"/repos/{FULL}/pulls/{number}/reviews", json={"event": "APPROVE"}).json()[
                "state"
            ]
            == "APPROVED"
        )
        listed = mona.get(f"/repos/{FULL}/pulls/{number}/reviews").json()
        assert [r["state"] for r in listed] == ["CHANGES_REQUESTED", "APPROVED"], "oldest first"
        assert mona.get(f"/repos/{FULL}/pulls/{number}/reviews/{review['id']}").json() == review
        comments = mona.get(f"/repos/{FULL}/pulls/{number}/comments").json()
        assert [(c["path"], c["line"], c["body"]) for c in comments] == [
            ("app/users.py", 1, "Immutable, please.")
        ]
        assert comments[0]["pull_request_review_id"] == review["id"]
        assert mona.get(f"/repos/{FULL}/pulls/{number}").json()["review_comments"] == 1

    hook = receiver.wait_for(
        lambda h: h.event == "pull_request_review" and h.payload["review"]["id"] == review["id"]
    )
    payload = hook.payload
    assert payload["action"] == "submitted"
    assert payload["review"]["state"] == "changes_requested", "webhooks spell states in lower case"
    assert payload["pull_request"]["number"] == number
    assert payload["sender"]["login"] == "mona"
    assert payload["installation"]["id"] == world.installation_id


def test_dismissal_changes_the_state_and_is_delivered(world: World, receiver: Receiver) -> None:
    number, _ = _open_pr(world, {"app/users.py": "USERS = []\n"})
    with world.client(world.maintainer.token) as mona:
        review = mona.post(
            f"/repos/{FULL}/pulls/{number}/reviews",
            json={"event": "REQUEST_CHANGES", "body": "No."},
        ).json()
        path = f"/repos/{FULL}/pulls/{number}/reviews/{review['id']}/dismissals"
        assert mona.put(path, json={}).status_code == 422, "a message is required"
        r = mona.put(path, json={"message": "Out of date", "event": "DISMISS"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "DISMISSED"
        assert mona.put(path, json={"message": "again"}).status_code == 422
        comment = mona.post(
            f"/repos/{FULL}/pulls/{number}/reviews", json={"event": "COMMENT", "body": "fyi"}
        ).json()
        commented = f"/repos/{FULL}/pulls/{number}/reviews/{comment['id']}/dismissals"
        assert mona.put(commented, json={"message": "x"}).status_code == 422
    hook = receiver.wait_for(
        lambda h: h.event == "pull_request_review" and h.payload["action"] == "dismissed"
    )
    assert hook.payload["review"]["state"] == "dismissed"
    assert [e["review"] for e in world.hub.events("review_dismissed")] == [review["id"]]


def test_review_validation_follows_github(world: World) -> None:
    number, _ = _open_pr(world, {"app/users.py": "USERS = []\n"})
    reviews = f"/repos/{FULL}/pulls/{number}/reviews"
    with world.client() as bot:  # the App opened the pull request
        own = bot.post(reviews, json={"event": "REQUEST_CHANGES", "body": "mine"})
        assert own.status_code == 422
        assert "your own pull request" in own.text
        assert bot.post(reviews, json={"event": "COMMENT", "body": "a note"}).status_code == 200
    with world.client(world.maintainer.token) as mona:
        assert mona.post(reviews, json={"event": "REQUEST_CHANGES"}).status_code == 422
        assert mona.post(reviews, json={"body": "pending?"}).status_code == 422
        outside = mona.post(
            reviews,
            json={
                "event": "COMMENT",
                "body": "x",
                "comments": [{"path": "README.md", "line": 1, "body": "not in the diff"}],
            },
        )
        assert outside.status_code == 422
        assert "Path could not be resolved" in outside.text
        assert mona.get(f"{reviews}/999999").status_code == 404
    world.hub.create_user("drive-by")
    stranger = world.hub.state.user("drive-by")
    assert stranger is not None
    with world.client(stranger.token) as other:  # a public repository: anyone may review
        r = other.post(reviews, json={"event": "REQUEST_CHANGES", "body": "I disagree"})
        assert r.status_code == 200, r.text
        assert r.json()["author_association"] == "NONE"
        dismiss = other.put(f"{reviews}/{r.json()['id']}/dismissals", json={"message": "no"})
        assert dismiss.status_code == 403, "dismissing needs write access"
