"""Comment commands (``bot/core/commands.py``): what counts as a command, and what does not."""

from __future__ import annotations

import pytest

from bot.core.commands import HELP_TEXT, WRITING_VERBS, Verb, parse_command


@pytest.mark.parametrize(
    ("body", "verb", "args"),
    [
        ("/stoneforge plan", Verb.PLAN, ""),
        ("/stoneforge plan keep it small\nUse SQLite.", Verb.PLAN, "keep it small\nUse SQLite."),
        ("Thanks!\n\n/stoneforge approve", Verb.APPROVE, ""),
        ("/stoneforge APPROVE", Verb.APPROVE, ""),
        ("/stoneforge replan split the API", Verb.REPLAN, "split the API"),
        ("/stoneforge status", Verb.STATUS, ""),
        ("/stoneforge", Verb.HELP, ""),
        ("/stoneforge frobnicate now", Verb.UNKNOWN, ""),
        ("/stoneforge pause\nand some prose", Verb.PAUSE, ""),
    ],
)
def test_commands_are_read(body: str, verb: Verb, args: str) -> None:
    command = parse_command(body)
    assert command is not None
    assert command.verb is verb
    assert command.args == args


@pytest.mark.parametrize(
    "body",
    [
        "> /stoneforge approve",
        "```\n/stoneforge approve\n```",
        "~~~text\n/stoneforge approve\n~~~",
        "Run `/stoneforge approve` when ready",
        "<!-- /stoneforge approve -->",
        "please /stoneforge approve",
        "/stoneforgery approve",
        "",
        None,
    ],
)
def test_quoted_or_embedded_commands_are_not_commands(body: str | None) -> None:
    assert parse_command(body) is None


def test_priority_takes_a_level() -> None:
    assert parse_command("/stoneforge priority p0").priority == 0  # type: ignore[union-attr]
    assert parse_command("/stoneforge priority 3").priority == 3  # type: ignore[union-attr]
    bad = parse_command("/stoneforge priority urgent")
    assert bad is not None
    assert bad.priority is None
    assert bad.error


def test_only_status_and_help_are_for_everyone() -> None:
    assert Verb.STATUS not in WRITING_VERBS
    assert Verb.HELP not in WRITING_VERBS
    assert {Verb.PLAN, Verb.APPROVE, Verb.PRIORITY} <= WRITING_VERBS
    for verb in Verb:
        if verb is not Verb.UNKNOWN:
            assert f"/stoneforge {verb.value}" in HELP_TEXT
