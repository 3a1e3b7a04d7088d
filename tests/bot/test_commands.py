"""``/stoneforge`` comment commands, through real signed webhook deliveries from fakehub.

The maintainer (``lead``, admin) and others comment over fakehub's REST API; fakehub delivers
``issue_comment`` to the bot in this process. ``plan``, ``approve`` and ``replan`` go to a
typed fake ``DirectorPort`` put in place of the bot's ``NoDirector``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.commands import CommandHandler
from bot.core.commands import HELP_TEXT
from bot.core.model import IssueRef
from bot.ports import DirectorPort
from tests.harness import World, open_world, wait_until

pytestmark = pytest.mark.slow


class FakeDirector:
    """Records what comment commands ask of the director; answers with fixed text."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, IssueRef, str]] = []
        self.plans: dict[IssueRef, list[IssueRef]] = {}
        self.paused: dict[IssueRef, bool] = {}

    async def plan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None:
        self.calls.append(("plan", epic, guidance))
        return f"Planning #{epic.number} for @{by}."

    async def approve(self, installation_id: int, epic: IssueRef, *, by: str) -> str | None:
        self.calls.append(("approve", epic, by))
        return "Approved: the plan's tasks are queued."

    async def replan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None:
        self.calls.append(("replan", epic, guidance))
        return None  # nothing to say beyond the eyes reaction

    async def status(self, installation_id: int, ref: IssueRef) -> str | None:
        return "**Plan status** (epic)" if ref in self.plans else None

    async def plan_tasks(self, epic: IssueRef) -> list[IssueRef] | None:
        return self.plans.get(epic)

    async def set_paused(self, epic: IssueRef, paused: bool) -> bool:
        if epic not in self.plans:
            return False
        self.paused[epic] = paused
        return True


def _typed(fake: FakeDirector) -> DirectorPort:
    return fake  # mypy checks the fake against the port


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path, bot=True) as w:
        yield w


@pytest.fixture
def director(world: World) -> FakeDirector:
    fake = FakeDirector()
    assert world.bot is not None
    commands: CommandHandler = world.bot.app.state.bot.commands
    commands.director = _typed(fake)
    return fake


# --- helpers ---------------------------------------------------------------------------------


def comment(world: World, number: int, body: str, token: str | None = None) -> dict[str, Any]:
    with world.api(token) as api:
        resp = api.post(f"/repos/octo/app/issues/{number}/comments", json={"body": body})
        resp.raise_for_status()
        return dict(resp.json())


def edit_comment(world: World, comment_id: int, body: str) -> None:
    with world.api() as api:
        api.patch(
            f"/repos/octo/app/issues/comments/{comment_id}", json={"body": body}
        ).raise_for_status()


def eyes(world: World, comment_id: int) -> int:
    return int(world.get(f"/repos/octo/app/issues/comments/{comment_id}")["reactions"]["eyes"])


def replies(world: World, number: int) -> list[str]:
    """The bot's comments on the issue, oldest first (its status comment aside)."""
    found = world.get(f"/repos/octo/app/issues/{number}/comments")
    return [
        c["body"]
        for c in found
        if c["user"]["login"] == "stoneforge[bot]" and "stoneforge:status" not in c["body"]
    ]


def user(world: World, login: str, role: str | None, kind: str = "User") -> str:
    """A new account (``role`` on octo/app, if any); its token."""
    account = world.hub.create_user(login, type=kind)
    if role is not None:
        world.hub.set_permission("octo/app", login, role)
    return account.token or ""


def queued_task(world: World, title: str) -> int:
    number = world.file_labeled(title)
    wait_until(lambda: world.tasks().get(number, {}).get("state") == "queued", what="queued")
    return number


# --- taken once, by writers, as commands ---------------------------------------------------


def test_a_writers_command_is_taken_once_and_neither_an_edit_nor_a_redelivery_repeats_it(
    world: World, director: FakeDirector
) -> None:
    epic = world.file("Build the importer")["number"]
    said = comment(world, epic, "/stoneforge plan\nSmall steps, tests first.")
    world.settle()
    assert director.calls == [("plan", IssueRef("octo/app", epic), "Small steps, tests first.")]
    assert eyes(world, said["id"]) == 1
    assert replies(world, epic) == [f"Planning #{epic} for @lead."]

    edit_comment(world, said["id"], "/stoneforge plan\nBig bang instead.")
    world.settle()
    # the same delivery sent again under a new delivery id (another replica, a manual resend)
    record = next(
        r
        for r in world.hub.sender.records()
        if r.event == "issue_comment"
        and r.payload["action"] == "created"
        and r.payload["comment"]["id"] == said["id"]
    )
    guid = world.hub.sender.send(
        f"{world.bot_url}/webhooks/github", world.secret, "issue_comment", record.payload
    )
    world.settle()
    delivered = {r.guid: r for r in world.hub.sender.records() if r.event == "issue_comment"}
    assert delivered[guid].status_code == 202, "the bot took the resent delivery in"
    edits = [r for r in delivered.values() if r.payload["action"] == "edited"]
    assert [r.status_code for r in edits] == [202]
    assert len(director.calls) == 1
    assert len(replies(world, epic)) == 1
    assert eyes(world, said["id"]) == 1


def test_approve_and_replan_go_to_the_director(world: World, director: FakeDirector) -> None:
    epic = world.file("Epic")["number"]
    approved = comment(world, epic, "/stoneforge approve")
    replanned = comment(world, epic, "/stoneforge replan keep the parser")
    world.settle()
    ref = IssueRef("octo/app", epic)
    assert sorted(director.calls) == [("approve", ref, "lead"), ("replan", ref, "keep the parser")]
    assert replies(world, epic) == ["Approved: the plan's tasks are queued."]
    assert eyes(world, approved["id"]) == eyes(world, replanned["id"]) == 1


def test_a_non_writer_is_refused_and_nothing_happens(world: World, director: FakeDirector) -> None:
    number = queued_task(world, "Queued work")
    token = user(world, "triager", "triage")  # may comment and label, not write
    reader = user(world, "reader", "read")  # may comment, as on GitHub
    said = comment(world, number, "/stoneforge cancel", token=token)
    planned = comment(world, number, "/stoneforge plan", token=token)
    read_only = comment(world, number, "/stoneforge retry", token=reader)
    world.settle()
    assert world.tasks()[number]["state"] == "queued"
    assert director.calls == []
    assert (
        eyes(world, said["id"]) == eyes(world, planned["id"]) == eyes(world, read_only["id"]) == 0
    )
    refusals = replies(world, number)
    assert len(refusals) == 3
    assert all("write access" in r for r in refusals)
    assert sum("@triager" in r for r in refusals) == 2
    assert sum("@reader" in r for r in refusals) == 1
    # reading is for everyone
    comment(world, number, "/stoneforge status", token=token)
    world.settle()
    assert "| state | queued |" in replies(world, number)[-1]


def test_a_quoted_or_fenced_command_does_nothing(world: World) -> None:
    number = queued_task(world, "Queued work")
    quoted = comment(world, number, "> /stoneforge cancel\n\nWhy would you do that?")
    fenced = comment(world, number, "Try this:\n```\n/stoneforge cancel\n```")
    inline = comment(world, number, "Type `/stoneforge cancel` to stop it.")
    world.settle()
    assert world.tasks()[number]["state"] == "queued"
    assert [eyes(world, c["id"]) for c in (quoted, fenced, inline)] == [0, 0, 0]
    assert replies(world, number) == []


def test_an_unknown_command_gets_the_help(world: World) -> None:
    number = world.file("Anything")["number"]
    said = comment(world, number, "/stoneforge frobnicate now")
    world.settle()
    assert replies(world, number) == [HELP_TEXT]
    assert eyes(world, said["id"]) == 1


def test_comments_of_bots_and_of_the_app_itself_are_ignored(world: World) -> None:
    number = queued_task(world, "Queued work")
    token = user(world, "helper[bot]", "write", kind="Bot")
    by_bot = comment(world, number, "/stoneforge cancel", token=token)
    by_app = comment(world, number, "/stoneforge cancel", token=world.bot_token)
    world.settle()
    assert world.tasks()[number]["state"] == "queued"
    assert eyes(world, by_bot["id"]) == eyes(world, by_app["id"]) == 0
    assert replies(world, number) == ["/stoneforge cancel"]  # only the App's own comment


def test_a_bot_the_repository_allows_may_command(world: World) -> None:
    world.push_main({".github/stoneforge.yml": 'version: 1\nbots:\n  allow: ["helper[bot]"]\n'})
    world.wait_until(
        lambda: "helper[bot]" in world.bot.app.state.bot.repos.config("octo/app").bots.allow,  # type: ignore[union-attr]
        what="the configuration loaded",
    )
    number = queued_task(world, "Queued work")
    token = user(world, "helper[bot]", "write", kind="Bot")
    said = comment(world, number, "/stoneforge cancel", token=token)
    world.settle()
    assert world.tasks()[number]["state"] == "cancelled"
    assert eyes(world, said["id"]) == 1


# --- the task verbs --------------------------------------------------------------------------


def test_pause_holds_a_queued_task_and_resume_releases_it(world: World) -> None:
    number = queued_task(world, "Hold me")
    comment(world, number, "/stoneforge pause")
    world.settle()
    assert world.tasks()[number]["paused"] is True
    assert world.claim() is None, "a paused task is never dispatched"
    comment(world, number, "/stoneforge resume")
    world.settle()
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["issue"] == number


def test_pause_on_the_control_issue_holds_the_whole_repository(world: World) -> None:
    number = queued_task(world, "Some work")
    control = world.file("Stoneforge control")["number"]
    world.label(control, "stoneforge:control")
    comment(world, control, "/stoneforge pause")
    world.settle()
    assert world.tasks()[number]["paused"] is False  # the task itself is not paused
    assert world.claim() is None
    assert "octo/app is paused" in replies(world, control)[-1]
    comment(world, control, "/stoneforge resume")
    world.settle()
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["issue"] == number


def test_pause_on_an_epic_pauses_each_task_of_its_plan(
    world: World, director: FakeDirector
) -> None:
    first, second = queued_task(world, "Step 1"), queued_task(world, "Step 2")
    other = queued_task(world, "Not in the plan")
    epic = world.file("The epic")["number"]
    director.plans[IssueRef("octo/app", epic)] = [
        IssueRef("octo/app", first),
        IssueRef("octo/app", second),
    ]
    comment(world, epic, "/stoneforge pause")
    world.settle()
    tasks = world.tasks()
    assert (tasks[first]["paused"], tasks[second]["paused"], tasks[other]["paused"]) == (
        True,
        True,
        False,
    )
    assert director.paused == {IssueRef("octo/app", epic): True}
    job = world.claim(wait_s=1)
    assert job is not None
    assert job["issue"] == other
    assert world.claim() is None


def test_priority_p0_puts_a_task_first(world: World) -> None:
    first = queued_task(world, "Filed first")
    urgent = queued_task(world, "Filed second")
    comment(world, urgent, "/stoneforge priority p0")
    bad = comment(world, first, "/stoneforge priority p9")
    world.settle()
    assert world.tasks()[urgent]["priority"] == 0
    assert world.tasks()[first]["priority"] == 2
    assert "p0 (most urgent) to p4" in replies(world, first)[-1]
    assert eyes(world, bad["id"]) == 1
    world.edit(urgent, body="More detail.")  # the issue is synced again: the priority stays
    world.settle()
    assert world.tasks()[urgent]["priority"] == 0
    job = world.claim(wait_s=5)
    assert job is not None
    assert job["issue"] == urgent


def test_retry_queues_a_failed_task_again(world: World) -> None:
    number = queued_task(world, "Breaks the tests")
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    world.report(job, {"outcome": "failed", "reason": "tests_failed", "detail": "2 failed"})
    wait_until(lambda: world.tasks()[number]["state"] == "failed", what="failed")
    comment(world, number, "/stoneforge retry")
    world.settle()
    task = world.tasks()[number]
    assert (task["state"], task["attempt"]) == ("queued", 0)
    assert task["detail"] == "restart: /stoneforge retry by @lead"
    again = world.claim(wait_s=5)
    assert again is not None
    assert again["issue"] == number


def test_cancel_stops_a_queued_task_and_retry_of_a_queued_one_says_why_not(
    world: World,
) -> None:
    number = queued_task(world, "Never mind")
    comment(world, number, "/stoneforge retry")
    world.settle()
    assert "only a failed or cancelled task is retried" in replies(world, number)[-1]
    comment(world, number, "/stoneforge cancel")
    world.settle()
    assert world.tasks()[number]["state"] == "cancelled"
    assert world.tasks()[number]["detail"] == "cancelled by @lead (/stoneforge cancel)"
    assert world.claim() is None


def test_status_on_a_task_and_on_an_epic(world: World, director: FakeDirector) -> None:
    number = queued_task(world, "Report on me")
    epic = world.file("The epic")["number"]
    director.plans[IssueRef("octo/app", epic)] = [IssueRef("octo/app", number)]
    comment(world, number, "/stoneforge status")
    comment(world, epic, "/stoneforge status")
    outsider = world.file("Not a task")["number"]
    comment(world, outsider, "/stoneforge status")
    world.settle()
    mine = replies(world, number)[-1]
    assert "| state | queued |" in mine
    assert "| attempt | 0 |" in mine
    assert "| pull request | none yet |" in mine
    assert replies(world, epic) == ["**Plan status** (epic)"]
    assert "not a Stoneforge task" in replies(world, outsider)[-1]


def test_plan_commands_reach_the_bots_own_director(world: World) -> None:
    # The bot wires its real director in (bot.service.director_side): the first plan is taken
    # (eyes, no reply: the plan job is queued), the second is refused while the first is made.
    epic = world.file("Epic")["number"]
    first = comment(world, epic, "/stoneforge plan keep it small")
    world.settle()
    second = comment(world, epic, "/stoneforge plan")
    world.settle()
    assert eyes(world, first["id"]) == 1
    [said] = replies(world, epic)
    assert said.startswith("A plan for this issue is already being made")
    assert eyes(world, second["id"]) == 1


def test_cancel_takes_a_running_job_back(world: World) -> None:
    number = queued_task(world, "Stop me")
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    comment(world, number, "/stoneforge cancel")
    world.settle()
    assert world.tasks()[number]["state"] == "cancelled"
    late = world.report(job, {"outcome": "failed", "reason": "tests_failed"})
    assert late.status_code in (403, 409), "the runner's job is no longer the task's"
    assert world.tasks()[number]["state"] == "cancelled"
