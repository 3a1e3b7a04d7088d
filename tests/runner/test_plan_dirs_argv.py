"""How each adapter lets its CLI write a plan job's plan file: the folders of
``RunRequest.extra_dirs`` (outside the worktree), or the files of ``edit_files`` (aider).
The real CLIs doing it are in tests/conformance/test_<cli>.py (``test_a_plan_job_...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.agents.aider import AiderAdapter
from runner.agents.base import Permissions, RunRequest
from runner.agents.codex import CodexAdapter
from runner.agents.copilot import CopilotAdapter
from runner.agents.gemini import GeminiAdapter
from runner.agents.opencode import OpenCodeAdapter

DIRS = [Path("/w/plans/a"), Path("/w/plans/b")]


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def request(tmp_path: Path, permissions: Permissions = "workspace_write", **kw: Any) -> RunRequest:
    return RunRequest("t", "p", tmp_path, permissions=permissions, **kw)


def test_codex_makes_each_folder_a_writable_root_of_its_sandbox(tmp_path: Path) -> None:
    argv = CodexAdapter(binary="codex").build(request(tmp_path, extra_dirs=DIRS)).argv
    assert values(argv, "--add-dir") == ["/w/plans/a", "/w/plans/b"]
    assert argv.index("--add-dir") < argv.index("-")  # exec's flags, before the prompt
    resumed = request(tmp_path, extra_dirs=DIRS, resume_session="s-1")
    argv = CodexAdapter(binary="codex").build(resumed).argv
    assert argv.index("--add-dir") < argv.index("resume")  # exec's, not the sub-command's
    # Only the workspace-write sandbox has writable roots; none without folders.
    for permissions in ("read_only", "full_unattended"):
        other = request(tmp_path, permissions, extra_dirs=DIRS)  # type: ignore[arg-type]
        assert "--add-dir" not in CodexAdapter(binary="codex").build(other).argv
    assert "--add-dir" not in CodexAdapter(binary="codex").build(request(tmp_path)).argv


def test_gemini_adds_each_folder_to_its_workspace(tmp_path: Path) -> None:
    argv = GeminiAdapter(binary="gemini").build(request(tmp_path, extra_dirs=DIRS)).argv
    assert values(argv, "--include-directories") == ["/w/plans/a", "/w/plans/b"]
    assert (
        "--include-directories" not in GeminiAdapter(binary="gemini").build(request(tmp_path)).argv
    )


def test_copilot_allows_each_folder(tmp_path: Path) -> None:
    argv = CopilotAdapter(binary="copilot").build(request(tmp_path, extra_dirs=DIRS)).argv
    assert values(argv, "--add-dir") == ["/w/plans/a", "/w/plans/b"]
    assert "--allow-all-paths" not in argv
    assert "--add-dir" not in CopilotAdapter(binary="copilot").build(request(tmp_path)).argv


@pytest.mark.parametrize("folders", [DIRS, []])
def test_opencode_allows_only_the_folders_outside_the_worktree(
    tmp_path: Path, folders: list[Path]
) -> None:
    env = OpenCodeAdapter(binary="opencode").build(request(tmp_path, extra_dirs=folders)).env
    rules = json.loads(env["OPENCODE_PERMISSION"])
    if not folders:
        assert rules["external_directory"] == "deny"
        return
    # The last rule that matches wins: everything outside denied, but the folders.
    assert list(rules["external_directory"].items()) == [
        ("*", "deny"),
        ("/w/plans/a", "allow"),
        ("/w/plans/a/*", "allow"),
        ("/w/plans/b", "allow"),
        ("/w/plans/b/*", "allow"),
    ]
    assert (rules["edit"], rules["bash"]) == ("allow", "allow")


def test_opencode_read_only_stays_read_only_with_folders(tmp_path: Path) -> None:
    env = (
        OpenCodeAdapter(binary="opencode")
        .build(request(tmp_path, "read_only", extra_dirs=DIRS))
        .env
    )
    rules = json.loads(env["OPENCODE_PERMISSION"])
    assert "external_directory" not in rules
    assert rules["edit"] == "deny"


def test_aider_is_given_the_files_to_write_and_may_edit_ignored_ones(tmp_path: Path) -> None:
    plan = tmp_path / ".stoneforge" / "plan.json"
    argv = AiderAdapter(binary="aider").build(request(tmp_path, edit_files=[plan])).argv
    assert values(argv, "--file") == [str(plan)]
    assert "--add-gitignore-files" in argv
    assert "--file" not in AiderAdapter(binary="aider").build(request(tmp_path)).argv
    assert AiderAdapter.writes_outside_workdir is False
