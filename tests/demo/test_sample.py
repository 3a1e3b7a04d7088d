"""The demo's sample repository and sprint: the files it is loaded from, shape of the sprint,
and that it merges cleanly.

The merge proofs use real git and the sample's own CI command. A small local applier stands in
for the script agent (which lives in the runner): it applies the same JSON edits.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.core.refs import parse_blockers
from demo.sample import (
    CI_COMMAND,
    CONFLICTING,
    HERE,
    SAMPLE_REPO,
    SPRINT,
    SprintIssue,
    load_repo,
    load_sprint,
    script_block,
)
from runner.agents.script_agent import resolve_both

REQUIRED_TITLES = {
    "Refactor auth module to use JWT",
    "Fix failing integration tests",
    "Add /api/v2/users endpoint",
    "Write tests for users endpoint",
}
BY_KEY = {issue.key: issue for issue in SPRINT}
ORDER = [issue.key for issue in SPRINT]  # filing order, also a topological order
FENCE = re.compile(r"^```stoneforge-script\n(.*?)\n```$", re.MULTILINE | re.DOTALL)
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Sample Maintainer",
    "GIT_AUTHOR_EMAIL": "maintainer@example.com",
    "GIT_COMMITTER_NAME": "Sample Maintainer",
    "GIT_COMMITTER_EMAIL": "maintainer@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

Files = dict[str, str]


# --------------------------------------------------------------------------- helpers


def parse_script(body: str) -> dict[str, Any]:
    blocks = FENCE.findall(body)
    assert len(blocks) == 1, "exactly one stoneforge-script block"
    script: dict[str, Any] = json.loads(blocks[0])
    return script


def apply_edits(files: Files, script: Mapping[str, Any]) -> Files:
    """The script agent's edits on an in-memory tree; a replace anchor must occur exactly once."""
    out = dict(files)
    for edit in script["edits"]:
        path = edit["path"]
        if "write" in edit:
            out[path] = edit["write"]
        elif "append" in edit:
            out[path] = out.get(path, "") + edit["append"]
        else:
            old, new = edit["replace"]
            text = out.get(path, "")
            assert text.count(old) == 1, f"anchor in {path} occurs {text.count(old)} times: {old!r}"
            out[path] = text.replace(old, new)
    return out


def blockers(key: str) -> set[str]:
    return set(BY_KEY[key].blocked_by)


def ancestors(key: str) -> set[str]:
    seen: set[str] = set()
    stack = list(blockers(key))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(blockers(current))
    return seen


def independent(a: str, b: str) -> bool:
    return a != b and a not in ancestors(b) and b not in ancestors(a)


def longest_chain(key: str) -> int:
    return 1 + max((longest_chain(b) for b in blockers(key)), default=0)


def chain_sleep(key: str) -> float:
    return BY_KEY[key].sleep + max((chain_sleep(b) for b in blockers(key)), default=0.0)


def merge_states() -> list[set[str]]:
    """Every set of merged tasks the pipeline can reach: sets closed under "blocked by"."""
    return [
        set(combo)
        for size in range(len(ORDER) + 1)
        for combo in itertools.combinations(ORDER, size)
        if all(blockers(key) <= set(combo) for key in combo)
    ]


def scripts_of(key: str) -> list[dict[str, Any]]:
    """What lands for an issue: its script, its fix once CI went red, then the one its review
    asks for (the demo)."""
    issue = BY_KEY[key]
    script = parse_script(issue.body)
    fix = [script["fix"]] if "fix" in script else []
    return [script, *fix, *(parse_script(issue.review) for _ in [0] if issue.review)]


def tree_after(merged: Iterable[str]) -> Files:
    """The tree once ``merged`` landed, in filing order (or in the order given, when it is a
    list: two CONFLICTING tasks' lines land in their merge order)."""
    files = dict(SAMPLE_REPO)
    keys = merged if isinstance(merged, list) else [k for k in ORDER if k in set(merged)]
    for key in keys:
        for script in scripts_of(key):
            files = apply_edits(files, script)
    return files


def added_lines(key: str, path: str) -> list[str]:
    """The non-blank lines ``key``'s scripts add to ``path`` by their replace edits."""
    out = []
    for script in scripts_of(key):
        for edit in script["edits"]:
            if edit["path"] == path and "replace" in edit:
                old, new = edit["replace"]
                added = [x for x in new.splitlines(keepends=True) if x not in old and x.strip()]
                out += added
    return out


def conflicting(a: str, b: str) -> bool:
    return any({a, b} == {x, y} for x, y, _ in CONFLICTING)


def touched(key: str) -> set[str]:
    return {edit["path"] for script in scripts_of(key) for edit in script["edits"]}


def same_file_pairs() -> list[tuple[str, str, str]]:
    return [
        (a, b, path)
        for a, b in itertools.combinations(ORDER, 2)
        if independent(a, b)
        for path in sorted(touched(a) & touched(b))
    ]


def write_tree(root: Path, files: Files) -> None:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")


def run_ci(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CI_COMMAND, cwd=root, capture_output=True, text=True, timeout=30)


def assert_ci_passes(root: Path, context: str) -> None:
    result = run_ci(root)
    assert result.returncode == 0, f"CI failed {context}:\n{result.stdout}\n{result.stderr}"


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"git {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def init_repo(root: Path, files: Files) -> Path:
    root.mkdir()
    write_tree(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial commit")
    return root


def open_branch(repo: Path, key: str) -> str:
    """Branch from main, let the 'agent' edit, commit, and run CI on the branch head."""
    branch = f"stoneforge/{key}"
    git(repo, "checkout", "-q", "-b", branch, "main")
    current = {path: (repo / path).read_text(encoding="utf-8") for path in touched(key)
               if (repo / path).exists()}  # fmt: skip
    edited = current
    for script in scripts_of(key):
        edited = apply_edits(edited, script)
    write_tree(repo, edited)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"{BY_KEY[key].title}")
    assert_ci_passes(repo, f"on {branch}")
    git(repo, "checkout", "-q", "main")
    return branch


def merge_branch(repo: Path, branch: str, *, update_first: bool) -> bool:
    """Merge a PR branch with --no-ff; "Update branch" (main into head, re-test) when behind.
    A branch that conflicts with main is rebased onto it as the steward's rebase job does, and
    its conflicts resolved as the script agent does (both sides, main's first). Whether it
    conflicted."""
    conflicted = False
    if update_first:
        git(repo, "checkout", "-q", branch)
        merged = subprocess.run(
            ["git", "merge", "-q", "--no-ff", "-m", f"Merge main into {branch}", "main"],
            cwd=repo, env=GIT_ENV, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if merged.returncode != 0:
            conflicted = True
            git(repo, "merge", "--abort")
            rebase_resolving(repo)
        assert_ci_passes(repo, f"on {branch} after updating it")
        git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
    return conflicted


def rebase_resolving(repo: Path) -> None:
    """``git rebase main`` on the checked-out branch, each stop resolved with both sides."""
    step = subprocess.run(["git", "rebase", "main"], cwd=repo, env=GIT_ENV,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    while step.returncode != 0:
        files = git(repo, "diff", "--name-only", "--diff-filter=U").split()
        assert files, step.stdout + step.stderr
        for name in files:
            (repo / name).write_text(resolve_both((repo / name).read_text(encoding="utf-8")))
            git(repo, "add", name)
        step = subprocess.run(["git", "-c", "core.editor=true", "rebase", "--continue"],
                              cwd=repo, env=GIT_ENV, capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip


def head_tree(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD^{tree}").strip()


# --------------------------------------------------------------------------- the files


def test_the_repository_is_the_files_under_sample_repo() -> None:
    on_disk = sorted(
        p.relative_to(HERE / "repo").as_posix()
        for p in (HERE / "repo").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert sorted(SAMPLE_REPO) == on_disk
    assert {".gitignore", "app/api.py", "tests/test_integration.py"} <= set(SAMPLE_REPO)
    assert SAMPLE_REPO["app/users.py"] == (HERE / "repo/app/users.py").read_text(encoding="utf-8")


def test_every_sprint_file_is_used() -> None:
    """An issue's directory holds exactly the files its `write` edits put in place."""
    written = {
        f"{position:02d}-{issue.key}" + (".review" if text is issue.review else "") + "/" + path
        for position, issue in enumerate(SPRINT, start=1)
        for text in (issue.body, issue.review)
        if text
        for path in (e["path"] for e in parse_script(text)["edits"] if "write" in e)
    }
    files = {
        p.relative_to(HERE / "sprint").as_posix()
        for p in (HERE / "sprint").rglob("*")
        if p.is_file() and p.suffix != ".md" and "__pycache__" not in p.parts
    }
    assert files == written
    issues = sorted(p.name for p in (HERE / "sprint").glob("*.md"))
    assert len(issues) == len(SPRINT) + len([i for i in SPRINT if i.review])


def write_issue(root: Path, name: str, front: str, prose: str = "Some prose.") -> None:
    (root / name).write_text(f"---\n{front}---\n{prose}\n", encoding="utf-8")


def test_an_issue_file_becomes_a_sprint_issue(tmp_path: Path) -> None:
    (tmp_path / "02-b" / "app").mkdir(parents=True)
    (tmp_path / "02-b" / "app" / "new.py").write_text("X = 1\n")
    write_issue(tmp_path, "01-a.md", "title: A\nsleep: 2.0\nsummary: s\nedits:\n"
                "- append: NOTES.md\n  text: |\n    - a\n")  # fmt: skip
    write_issue(
        tmp_path,
        "02-b.md",
        "title: B\nlabels: [agent-ready, p1]\nblocked_by:\n  text: [a]\nsleep: 3.0\n"
        "summary: t\nedits:\n- write: app/new.py\n- replace: README.md\n  old: x\n  new: y\n",
        "Blocked by #{a}.",
    )
    a, b = load_sprint(tmp_path)
    assert (a.key, a.title, a.labels, a.blocked_by) == ("a", "A", ("agent-ready",), ())
    assert a.script["edits"] == [{"path": "NOTES.md", "append": "- a\n"}]
    assert (a.script["sleep"], a.script["summary"]) == (2.0, "s")
    assert (b.key, b.labels, b.blocked_by_text) == ("b", ("agent-ready", "p1"), ("a",))
    assert b.review is None
    assert b.body.startswith("Blocked by #{a}.\n\n```stoneforge-script\n")
    assert b.script["edits"] == [
        {"path": "app/new.py", "write": "X = 1\n"},
        {"path": "README.md", "replace": ["x", "y"]},
    ]
    assert load_repo(tmp_path / "02-b") == {"app/new.py": "X = 1\n"}


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("title: A\nsleep: 2.0\nsummary: s\nedits: []\nblockers: [b]\n", "unknown keys"),
        ("title: A\nsleep: 2.0\nsummary: s\nedits:\n- delete: a.py\n", "an edit is"),
        ("title: A\nsleep: 2.0\nsummary: s\nedits: []\nblocked_by: {linked: [b]}\n", "blocked_by"),
        ("- just a list\n", "not a mapping"),
    ],
)
def test_a_malformed_issue_file_is_refused_by_name(
    tmp_path: Path, front: str, message: str
) -> None:
    write_issue(tmp_path, "01-a.md", front)
    with pytest.raises(ValueError, match=message) as err:
        load_sprint(tmp_path)
    assert "01-a.md" in str(err.value)


def test_an_issue_file_without_front_matter_is_refused(tmp_path: Path) -> None:
    (tmp_path / "01-a.md").write_text("title: A\n\nno front matter\n")
    with pytest.raises(ValueError, match="no front matter"):
        load_sprint(tmp_path)


# --------------------------------------------------------------------------- the sprint's shape


def test_sprint_has_the_required_issues() -> None:
    assert len(SPRINT) >= 8
    assert len(set(ORDER)) == len(ORDER)
    assert REQUIRED_TITLES <= {issue.title for issue in SPRINT}
    for position, issue in enumerate(SPRINT):
        assert "agent-ready" in issue.labels
        assert blockers(issue.key) <= set(ORDER[:position]), "blockers are filed first"
        assert not set(issue.blocked_by_text) & set(issue.blocked_by_native)


def test_sleeps_make_parallel_work_pay() -> None:
    sleeps = [issue.sleep for issue in SPRINT]
    assert all(2.0 <= sleep <= 6.0 for sleep in sleeps)
    assert 25.0 <= sum(sleeps) <= 35.0
    critical_path = max(chain_sleep(key) for key in ORDER)
    assert critical_path < 0.6 * sum(sleeps)  # what 3+ workers need at least, vs. serial
    for issue in SPRINT:
        assert parse_script(issue.body)["sleep"] == issue.sleep


def test_dependency_graph_is_deep_mixed_and_parallel() -> None:
    assert max(longest_chain(key) for key in ORDER) >= 4  # A <- B <- C <- D
    assert len([key for key in ORDER if not blockers(key)]) >= 3
    assert any(issue.blocked_by_text for issue in SPRINT)
    assert any(issue.blocked_by_native for issue in SPRINT)


def test_every_body_holds_one_well_formed_script() -> None:
    for issue in SPRINT:
        script = parse_script(issue.body)
        assert script == issue.script
        assert script["summary"].strip()
        assert script["edits"]
        for edit in script["edits"]:
            assert set(edit) - {"path"} in ({"write"}, {"replace"}, {"append"}), edit
            assert not edit["path"].startswith("/")
            assert ".." not in edit["path"]
        prose = FENCE.sub("", issue.body)
        assert len(prose.split()) >= 20, f"{issue.key}: a maintainer would explain the task"


def test_a_review_asks_for_a_change_on_top_of_its_issue() -> None:
    reviewed = [issue for issue in SPRINT if issue.review]
    assert [issue.key for issue in reviewed] == ["ratelimit"]
    for issue in reviewed:
        assert issue.review
        script = parse_script(issue.review)
        assert script["edits"]
        assert script["summary"].strip()
        assert not issue.blocked_by, "a leaf: its pull request opens early in the demo"


def test_script_block_round_trips() -> None:
    block = script_block({"sleep": 2.0, "edits": [], "summary": "nothing"})
    assert block.startswith("```stoneforge-script\n")
    assert block.endswith("\n```")
    assert parse_script(block) == {"sleep": 2.0, "edits": [], "summary": "nothing"}
    with pytest.raises(ValueError, match="fence"):
        script_block({"edits": [{"path": "a.md", "append": "```\n"}]})


def test_render_body_names_text_blockers_by_number() -> None:
    numbers = {key: 40 + position for position, key in enumerate(ORDER)}
    for issue in SPRINT:
        body = issue.render_body(numbers)
        assert "#{" not in body
        for key in issue.blocked_by_text:
            assert f"Blocked by #{numbers[key]}" in body
        # What the bot reads from the text is exactly the text blockers (natives are links).
        found = {ref.number for ref in parse_blockers(body, "octo/demo")}
        assert found == {numbers[key] for key in issue.blocked_by_text}, issue.key
    with pytest.raises(KeyError):
        BY_KEY["v2-users"].render_body({})


def test_body_must_name_its_text_blockers() -> None:
    with pytest.raises(ValueError, match="text blockers"):
        SprintIssue(
            key="x",
            title="x",
            body="Blocked by #{a}\n" + script_block({"sleep": 2.0, "edits": [], "summary": "s"}),
            sleep=2.0,
        )


def test_independent_tasks_edit_one_file_in_separate_regions() -> None:
    pairs = same_file_pairs()
    assert pairs, "two independent tasks must edit the same file"
    for a, b, path in CONFLICTING:
        assert (a, b, path) in pairs or (b, a, path) in pairs, "a conflict is independent tasks'"
    for a, b, path in pairs:
        if conflicting(a, b):
            continue
        base = tree_after(ancestors(a) | ancestors(b))
        regions = []
        for key in (a, b):
            after = apply_edits(base, parse_script(BY_KEY[key].body))
            matcher = difflib.SequenceMatcher(
                None, base[path].splitlines(), after[path].splitlines(), autojunk=False
            )
            changed = [(i1, i2) for tag, i1, i2, _, _ in matcher.get_opcodes() if tag != "equal"]
            regions.append(changed)
        # Unchanged base lines between two changed ranges [i1, i2); negative means overlap.
        gaps = [
            b1 - a2 if a2 <= b1 else a1 - b2 if b2 <= a1 else -1
            for a1, a2 in regions[0]
            for b1, b2 in regions[1]
        ]
        assert min(gaps) >= 3, f"{a} and {b} edit {path} within {min(gaps)} lines"


# --------------------------------------------------------------------------- merge proofs


def test_initial_repo_passes_ci_with_the_known_bug_as_expected_failure(tmp_path: Path) -> None:
    write_tree(tmp_path, SAMPLE_REPO)
    result = run_ci(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK (expected failures=1)" in result.stderr

    fixed = tmp_path / "fixed"
    write_tree(fixed, apply_edits(SAMPLE_REPO, parse_script(BY_KEY["fix-tests"].body)))
    result = run_ci(fixed)
    assert result.returncode == 0, result.stderr
    assert "expected failures" not in result.stderr


def test_ci_command_fails_on_a_failing_test(tmp_path: Path) -> None:
    broken = dict(SAMPLE_REPO)
    broken["app/users.py"] = broken["app/users.py"].replace("self._next_id += 1", "pass")
    write_tree(tmp_path, broken)
    assert run_ci(tmp_path).returncode != 0


def test_every_reachable_main_passes_ci_and_every_ready_script_applies(tmp_path: Path) -> None:
    states = merge_states()
    assert len(states) > len(ORDER)
    for index, merged in enumerate(states):
        files = tree_after(merged)
        for key in ORDER:
            if key not in merged and blockers(key) <= merged:
                apply_edits(files, parse_script(BY_KEY[key].body))  # anchors exist on this main
        root = tmp_path / f"state{index}"
        write_tree(root, files)
        assert_ci_passes(root, f"with {sorted(merged)} merged")


@pytest.mark.slow
@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_sprint_merges_cleanly_batch_by_batch(tmp_path: Path, order: str) -> None:
    repo = init_repo(tmp_path / "repo", SAMPLE_REPO)
    assert_ci_passes(repo, "on the initial commit")
    merged: list[str] = []
    batches = 0
    conflicts = 0
    while len(merged) < len(ORDER):
        ready = [k for k in ORDER if k not in merged and blockers(k) <= set(merged)]
        assert ready, "the graph has no cycle, so something is ready"
        if order == "descending":
            ready.reverse()
        branches = {key: open_branch(repo, key) for key in ready}
        for position, key in enumerate(ready):
            conflicts += merge_branch(repo, branches[key], update_first=position > 0)
            merged.append(key)
        assert_ci_passes(repo, f"on main after batch {batches}")
        batches += 1
    assert batches >= 4
    assert "expected failures" not in run_ci(repo).stderr
    assert git(repo, "status", "--porcelain") == ""
    assert conflicts == len(CONFLICTING), "the conflict scene happens whatever the order"
    final = {path: (repo / path).read_text(encoding="utf-8") for path in tree_after(merged)}
    expected = tree_after(merged)
    for a, b, path in CONFLICTING:  # resolved: both tasks' lines, once each, in merge order
        landed = final.pop(path)
        del expected[path]
        lines = [line for key in merged if key in (a, b) for line in added_lines(key, path)]
        assert [landed.count(line) for line in lines] == [1] * len(lines), landed
        assert sorted(landed.index(x) for x in lines) == [landed.index(x) for x in lines]
    assert final == expected


@pytest.mark.slow
def test_independent_same_file_pairs_merge_in_either_order(tmp_path: Path) -> None:
    """Separate regions merge cleanly and alike in either order; a CONFLICTING pair really
    conflicts, in either order, and resolved with both sides it holds both tasks' lines."""
    for index, (a, b, path) in enumerate(same_file_pairs()):
        trees = []
        for first, second in ((a, b), (b, a)):
            repo = init_repo(tmp_path / f"{index}-{first}", tree_after(ancestors(a) | ancestors(b)))
            branches = {key: open_branch(repo, key) for key in (first, second)}
            merge_branch(repo, branches[first], update_first=False)
            conflicted = merge_branch(repo, branches[second], update_first=True)
            assert conflicted == conflicting(a, b), (first, second)
            assert_ci_passes(repo, f"after merging {first} then {second}")
            trees.append(head_tree(repo))
            if conflicting(a, b):  # resolved: both tasks' lines, once each, main's first
                landed = (repo / path).read_text(encoding="utf-8")
                lines = added_lines(first, path) + added_lines(second, path)
                assert [landed.count(line) for line in lines] == [1] * len(lines), landed
                assert sorted(landed.index(x) for x in lines) == [landed.index(x) for x in lines]
        assert (trees[0] == trees[1]) != conflicting(a, b)


def test_the_red_check_scene_fails_ci_first_and_its_fix_passes(tmp_path: Path) -> None:
    """The demo's red check: the logging task's first push fails the sample's CI; the fix the
    agent makes for the steward's fix_checks job passes it."""
    fixed = [key for key in ORDER if "fix" in parse_script(BY_KEY[key].body)]
    assert fixed == ["logging"]
    before = tree_after(ancestors("logging"))
    first = apply_edits(before, parse_script(BY_KEY["logging"].body))
    write_tree(tmp_path / "red", first)
    red = run_ci(tmp_path / "red")
    assert red.returncode != 0
    assert "client 10.1.2.3" in red.stderr
    write_tree(tmp_path / "green", tree_after(ancestors("logging") | {"logging"}))
    assert_ci_passes(tmp_path / "green", "after the fix")
