"""What the bot notes of GitHub's merge queue from its deliveries (``bot.merge_queue``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.core.merge_queue import QueueNote
from bot.events import parse_event
from bot.merge_queue import QueueNotes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
GROUP = "1" * 40
REPO = "Codertocat/Hello-World"


def _load(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


def _note(notes: QueueNotes, name: str) -> None:
    event = name.split("/")[0]
    notes.note(parse_event(event, _load(name)))


def test_a_group_built_then_dequeued_red_keeps_the_groups_head() -> None:
    notes = QueueNotes()
    notes.enqueued(REPO, 2, HEAD)
    assert notes.get(REPO, 2) == QueueNote(HEAD, "enqueued")
    _note(notes, "merge_group/checks_requested-from-schema.json")
    assert notes.get(REPO, 2) == QueueNote(HEAD, "enqueued", group_sha=GROUP)
    _note(notes, "pull_request/dequeued-ci-failure-from-schema.json")
    assert notes.get(REPO, 2) == QueueNote(HEAD, "dequeued", "CI_FAILURE", group_sha=GROUP)
    _note(notes, "merge_group/destroyed-dequeued-from-schema.json")  # after: changes nothing
    notes.red(REPO, 2, ("ci",))
    assert notes.get(REPO, 2) == QueueNote(
        HEAD, "dequeued", "CI_FAILURE", group_sha=GROUP, red=("ci",)
    )


def test_a_lost_dequeued_delivery_is_made_up_for_by_the_destroyed_group() -> None:
    notes = QueueNotes()
    _note(notes, "merge_group/checks_requested-from-schema.json")
    _note(notes, "merge_group/destroyed-dequeued-from-schema.json")
    assert notes.get(REPO, 2) == QueueNote(HEAD, "dequeued", "", group_sha=GROUP)
    notes.red(REPO, 2, ("ci",))  # its checks, read from the group's head, were red
    note = notes.get(REPO, 2)
    assert note is not None
    assert (note.reason, note.red) == ("CI_FAILURE", ("ci",))


def test_other_events_and_a_refusal() -> None:
    notes = QueueNotes()
    _note(notes, "pull_request/opened.json")
    assert notes.get(REPO, 2) is None
    notes.refused(REPO, 2, HEAD, "Pull Request is not mergeable")
    assert notes.get(REPO, 2) == QueueNote(
        HEAD, "dequeued", "REFUSED", message="Pull Request is not mergeable"
    )
