"""GitStore's shortcuts (fakehub/gitrefs.py) give git's own answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fakehub.gitrefs import ImmutableMemo, list_branches, read_ref
from fakehub.gitstore import GitStore, GitStoreError, git_env
from tests.fakehub.test_gitstore import ALICE, REPO, commit_on


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "repos")
    s.create_repo(REPO, {"README.md": "hello\n"}, author=ALICE)
    return s


def _git(store: GitStore, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=store.path(REPO), env=git_env(), capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def test_branch_tips_match_git_for_loose_and_packed_refs(store: GitStore) -> None:
    tip = commit_on(store, "feature/x", {"a.txt": "1\n"})
    assert store.ref_sha(REPO, "feature/x") == tip == _git(store, "rev-parse", "feature/x")
    _git(store, "pack-refs", "--all")  # what gc does: no loose file any more
    assert not (store.path(REPO) / "refs/heads/feature/x").exists()
    assert store.ref_sha(REPO, "feature/x") == tip
    newer = commit_on(store, "feature/x", {"a.txt": "2\n"})  # loose again, shadows packed
    assert store.ref_sha(REPO, "feature/x") == newer
    assert store.ref_sha(REPO, "no-such-branch") is None
    assert read_ref(store.path(REPO), "HEAD") is False  # symbolic: left to git


def test_the_branch_list_matches_git_for_loose_packed_and_nested_refs(store: GitStore) -> None:
    def from_git() -> dict[str, str]:
        out = _git(
            store, "for-each-ref", "--format=%(objectname) %(refname:lstrip=2)", "refs/heads/"
        )
        return {name: sha for sha, _, name in (line.partition(" ") for line in out.splitlines())}

    commit_on(store, "feature/x", {"a.txt": "1\n"})
    commit_on(store, "stoneforge/12-deep/name", {"b.txt": "1\n"})
    assert list_branches(store.path(REPO)) == from_git()
    _git(store, "pack-refs", "--all")
    commit_on(store, "feature/x", {"a.txt": "2\n"})  # loose again, over its packed line
    commit_on(store, "loose-only", {"c.txt": "1\n"})
    listed = list_branches(store.path(REPO))
    assert listed == from_git()
    assert set(listed or {}) == {"main", "feature/x", "stoneforge/12-deep/name", "loose-only"}
    assert store.branches(REPO) == listed
    _git(store, "update-ref", "-d", "refs/heads/stoneforge/12-deep/name")  # a packed one goes
    assert list_branches(store.path(REPO)) == from_git()
    _git(store, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    assert list_branches(store.path(REPO)) is None  # symbolic: left to git
    assert store.branches(REPO) == from_git()


def test_invalid_branch_names_are_still_refused(store: GitStore) -> None:
    for bad in ("a..b", "x.lock", "sp ace"):
        with pytest.raises(GitStoreError):
            store.ref_sha(REPO, bad)
    # A revision is never read as a path outside the repository's refs.
    outside = store.path(REPO).parent / "outside"
    outside.write_text(store.ref_sha(REPO, "main") or "")
    with pytest.raises(GitStoreError):
        store.commit_info(REPO, f"../../../{outside.name}")


def test_a_branch_named_like_a_known_commit_still_wins(store: GitStore) -> None:
    first = store.ref_sha(REPO, "main")
    assert first is not None
    assert store.commit_info(REPO, first).sha == first  # now a known commit
    other = commit_on(store, "side", {"b.txt": "1\n"})
    store.set_branch(REPO, first, other)  # a branch whose name is that sha
    assert store.commit_info(REPO, first).sha == other  # as git resolves it: branches win


def test_memoised_facts_are_the_same_as_computed(store: GitStore) -> None:
    base = store.ref_sha(REPO, "main")
    head = commit_on(store, "f", {"README.md": "changed\n"})
    assert base is not None
    for _ in range(2):  # the second answer comes from the memo
        assert store.is_ancestor(REPO, base, head) is True
        assert store.is_ancestor(REPO, head, base) is False
        assert [f["filename"] for f in store.changed_files(REPO, base, head)] == ["README.md"]
        assert store.commit_info(REPO, head).parents == [base]
    store.changed_files(REPO, base, head)[0]["filename"] = "mutated by a caller"
    assert store.changed_files(REPO, base, head)[0]["filename"] == "README.md"


def test_immutable_memo_is_bounded_and_computes_once() -> None:
    memo, calls = ImmutableMemo(size=2), []

    def compute(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert memo.get("a", lambda: compute("a")) == "A"
    assert memo.get("a", lambda: compute("a")) == "A"
    memo.get("b", lambda: compute("b"))
    memo.get("c", lambda: compute("c"))  # evicts "a", the least recently used
    memo.get("a", lambda: compute("a"))
    assert calls == ["a", "b", "c", "a"]
