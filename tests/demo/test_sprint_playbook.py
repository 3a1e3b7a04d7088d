"""tests.models.sprint: the playbook that works the demo's sprint through a CLI's shell tool.

Its shell command is run here with /bin/sh in a copy of the sample repository, as a CLI would, and
every task of the sprint (revisions included) must leave the files the script agent would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from demo.sample import SAMPLE_REPO, SPRINT
from runner.agents.script_agent import REVIEW_HEADING, apply_edit, parse_script
from tests.models.scenario import Dialect, Say, Shell
from tests.models.sprint import SprintPlaybook

SHELL = Dialect(
    write=lambda p, c: ("write", {"path": p, "content": c}),
    shell=lambda c: ("bash", {"command": c}),
)


def checkout(root: Path) -> Path:
    for rel, text in SAMPLE_REPO.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def prompts() -> list[str]:
    """Each task's prompt in sprint order, and after a reviewed one its revision's."""
    numbers = {item.key: index + 1 for index, item in enumerate(SPRINT)}
    out = []
    for item in SPRINT:
        body = item.render_body(numbers)
        out.append(f"# {item.title}\n\n{body}")
        if item.review:
            out.append(f"# {item.title}\n\n{body}\n\n{REVIEW_HEADING}\n\n{item.review}")
    return out


def test_the_shell_step_leaves_what_the_script_agent_leaves_for_every_task(
    tmp_path: Path,
) -> None:
    by_shell = checkout(tmp_path / "shell")
    by_agent = checkout(tmp_path / "agent")
    playbook = SprintPlaybook(SHELL)
    for prompt in prompts():
        turn = playbook.next_turn(prompt, 0)
        (shell,) = [s for s in turn.steps if isinstance(s, Shell)]
        [(name, args)] = turn.calls(SHELL)
        assert name == "bash"
        assert args["command"] == shell.command
        done = subprocess.run(
            ["/bin/sh", "-c", shell.command], cwd=by_shell, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        for edit in parse_script(prompt)["edits"]:
            apply_edit(by_agent.resolve(), edit)
        assert snapshot(by_shell) == snapshot(by_agent)
    assert len(playbook.applied) == len(prompts())


def test_the_call_after_the_edits_ran_says_the_summary_and_ends_the_run() -> None:
    playbook = SprintPlaybook(SHELL)
    prompt = prompts()[0]
    summary = parse_script(prompt)["summary"]
    assert any(isinstance(s, Shell) for s in playbook.next_turn(prompt, 0).steps)
    after = playbook.next_turn(prompt, 1)
    assert after.steps == (Say(summary),)
    assert after.calls(SHELL) == []
    assert playbook.summaries == [summary]


def test_a_fresh_try_gets_the_edits_again_and_a_resumed_revision_gets_its_own() -> None:
    playbook = SprintPlaybook(SHELL)
    reviewed = next(item for item in SPRINT if item.review)
    task, revision = [p for p in prompts() if reviewed.title in p]
    playbook.next_turn(task, 0)
    # The task is tried again from scratch: no tool result in that conversation yet.
    assert any(isinstance(s, Shell) for s in playbook.next_turn(task, 0).steps)
    # The revision resumes the session, whose history already holds one tool result.
    revising = playbook.next_turn(task + "\n" + revision, 1)
    (shell,) = [s for s in revising.steps if isinstance(s, Shell)]
    assert "retry_after" in _program(shell.command)
    assert playbook.next_turn(task + "\n" + revision, 2).text == parse_script(revision)["summary"]


def test_a_call_without_a_script_is_answered_with_text_and_kept() -> None:
    playbook = SprintPlaybook(SHELL)
    turn = playbook.next_turn("Generate a title for this conversation", 0)
    assert turn.calls(SHELL) == []
    assert playbook.strays == ["Generate a title for this conversation"]


def _program(command: str) -> str:
    import base64
    import re

    match = re.search(r"b64decode\('([^']+)'\)", command)
    assert match is not None
    return base64.b64decode(match.group(1)).decode()
