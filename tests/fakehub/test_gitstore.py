from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from fakehub.gitstore import GitStore, Identity, MergeConflict, NotFound, git_env

ALICE = Identity("Alice", "alice@example.com")
BOT = Identity("stoneforge[bot]", "bot@example.com")
REPO = "octo/demo"


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    s = GitStore(tmp_path / "repos")
    s.create_repo(REPO, {"README.md": "hello\n", "app/main.py": "print(1)\n"}, author=ALICE)
    return s


def commit_on(store: GitStore, branch: str, files: dict[str, str], message: str = "change") -> str:
    """Commit ``files`` (path -> text, None deletes) on top of ``branch`` with plumbing."""
    parent = store.ref_sha(REPO, branch) or store.ref_sha(REPO, "main")
    repo = store.path(REPO)
    env = git_env(
        {
            "GIT_INDEX_FILE": str(repo.parent / f"test-index-{threading.get_ident()}"),
            "GIT_AUTHOR_NAME": ALICE.name,
            "GIT_AUTHOR_EMAIL": ALICE.email,
            "GIT_COMMITTER_NAME": ALICE.name,
            "GIT_COMMITTER_EMAIL": ALICE.email,
        }
    )

    def git(*args: str, input: bytes | None = None) -> str:
        return (
            subprocess.run(
                ["git", *args], cwd=repo, env=env, input=input, capture_output=True, check=True
            )
            .stdout.decode()
            .strip()
        )

    git("read-tree", parent)
    for name, text in files.items():
        if text is None:
            git("update-index", "--index-info", input=f"0 {'0' * 40}\t{name}\n".encode())
        else:
            blob = git("hash-object", "-w", "--stdin", input=text.encode())
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
    tree = git("write-tree")
    sha = git("commit-tree", tree, "-p", parent, "-m", message)
    Path(env["GIT_INDEX_FILE"]).unlink()
    store.set_branch(REPO, branch, sha)
    return sha


def test_create_repo_sets_head_branch_and_receivepack(store: GitStore) -> None:
    main = store.ref_sha(REPO, "main")
    assert store.branches(REPO) == {"main": main}
    repo = store.path(REPO)
    assert repo == store.root / "octo" / "demo.git"
    assert (repo / "HEAD").read_text().strip() == "ref: refs/heads/main"
    config = subprocess.run(
        ["git", "config", "http.receivepack"], cwd=repo, capture_output=True, env=git_env()
    )
    assert config.stdout.strip() == b"true"
    info = store.commit_info(REPO, main)
    assert info.parents == []
    assert info.message == "Initial commit"
    assert (info.author_name, info.author_email) == ("Alice", "alice@example.com")
    assert info.author_date.endswith("Z")
    assert store.exists(REPO)
    assert not store.exists("octo/other")


def test_branches_set_and_delete(store: GitStore) -> None:
    main = store.ref_sha(REPO, "main")
    store.set_branch(REPO, "feature/x", main)
    assert store.branches(REPO) == {"main": main, "feature/x": main}
    assert store.delete_branch(REPO, "feature/x") is True
    assert store.delete_branch(REPO, "feature/x") is False
    assert store.ref_sha(REPO, "feature/x") is None
    with pytest.raises(NotFound):
        store.set_branch(REPO, "y", "f" * 40)


def test_conflicts_clean_and_conflicting(store: GitStore) -> None:
    a = commit_on(store, "a", {"README.md": "from a\n"})
    b = commit_on(store, "b", {"README.md": "from b\n"})
    c = commit_on(store, "c", {"other.txt": "new\n"})
    assert store.conflicts(REPO, a, c) == []
    assert store.conflicts(REPO, a, b) == ["README.md"]


def test_changed_files_against_merge_base(store: GitStore) -> None:
    commit_on(store, "pr", {"README.md": "hello\nmore\n", "app/main.py": None, "new.txt": "a\nb\n"})
    commit_on(store, "main", {"base-only.txt": "x\n"})  # moves main after the PR branched
    files = store.changed_files(REPO, "main", "pr")
    names = [f["filename"] for f in files]
    assert "base-only.txt" not in names
    by_name = {f["filename"]: f for f in files}
    assert by_name["README.md"]["status"] == "modified"
    assert by_name["README.md"]["additions"] == 1
    assert by_name["app/main.py"]["status"] == "removed"
    assert by_name["app/main.py"]["deletions"] == 1
    assert by_name["new.txt"] == {
        "filename": "new.txt", "status": "added", "additions": 2, "deletions": 0, "changes": 2
    }  # fmt: skip


def test_merge_commit_has_two_parents_and_both_sides(store: GitStore) -> None:
    head = commit_on(store, "pr", {"feature.txt": "feature\n"})
    base_before = commit_on(store, "main", {"main.txt": "main\n"})
    new = store.merge(
        REPO, "main", head, method="merge", title="Merge pull request #1", message="body",
        committer=BOT,
    )  # fmt: skip
    info = store.commit_info(REPO, new)
    assert info.parents == [base_before, head]
    assert info.message == "Merge pull request #1\n\nbody"
    assert store.ref_sha(REPO, "main") == new
    assert store.read_file(REPO, "main", "feature.txt") == b"feature\n"
    assert store.read_file(REPO, "main", "main.txt") == b"main\n"


def test_squash_is_single_parent_with_pr_author(store: GitStore) -> None:
    commit_on(store, "pr", {"one.txt": "1\n"})
    head = commit_on(store, "pr", {"two.txt": "2\n"})
    base_before = store.ref_sha(REPO, "main")
    new = store.merge(
        REPO, "main", head, method="squash", title="Add things (#2)", message="",
        committer=BOT, author=Identity("Pat", "pat@example.com"),
    )  # fmt: skip
    info = store.commit_info(REPO, new)
    assert info.parents == [base_before]
    assert info.message == "Add things (#2)"
    assert (info.author_name, info.committer_name) == ("Pat", BOT.name)
    assert store.read_file(REPO, new, "one.txt") == b"1\n"
    assert store.read_file(REPO, new, "two.txt") == b"2\n"


def test_rebase_replays_each_commit_keeping_author(store: GitStore) -> None:
    first = commit_on(store, "pr", {"one.txt": "1\n"}, message="first")
    head = commit_on(store, "pr", {"two.txt": "2\n"}, message="second")
    base_before = commit_on(store, "main", {"main.txt": "m\n"})
    new = store.merge(
        REPO, "main", head, method="rebase", title="ignored", message="", committer=BOT
    )
    tip = store.commit_info(REPO, new)
    assert tip.message == "second"
    assert tip.author_name == "Alice"
    assert tip.committer_name == BOT.name
    prev = store.commit_info(REPO, tip.parents[0])
    assert prev.message == "first"
    assert prev.sha != first
    assert prev.parents == [base_before]
    assert store.read_file(REPO, "main", "one.txt") == b"1\n"
    assert store.read_file(REPO, "main", "main.txt") == b"m\n"


def test_conflicting_merge_raises_and_leaves_base(store: GitStore) -> None:
    head = commit_on(store, "pr", {"README.md": "pr\n"})
    base = commit_on(store, "main", {"README.md": "main\n"})
    for method in ("merge", "squash", "rebase"):
        with pytest.raises(MergeConflict) as info:
            store.merge(REPO, "main", head, method=method, title="t", message="", committer=BOT)
        assert info.value.paths == ["README.md"]
        assert store.ref_sha(REPO, "main") == base
    assert store.read_file(REPO, "main", "README.md") == b"main\n"


def test_update_branch_merges_base_into_head(store: GitStore) -> None:
    head = commit_on(store, "pr", {"feature.txt": "f\n"})
    base = commit_on(store, "main", {"main.txt": "m\n"})
    new = store.update_branch(REPO, "pr", "main", committer=BOT)
    info = store.commit_info(REPO, new)
    assert info.parents == [head, base]
    assert info.message == "Merge branch 'main' into pr"
    assert store.ref_sha(REPO, "pr") == new
    assert store.read_file(REPO, new, "feature.txt") == b"f\n"
    assert store.read_file(REPO, new, "main.txt") == b"m\n"
    assert store.is_ancestor(REPO, base, new)
    # already up to date: unchanged
    assert store.update_branch(REPO, "pr", "main", committer=BOT) == new


def test_update_branch_conflict(store: GitStore) -> None:
    head = commit_on(store, "pr", {"README.md": "pr\n"})
    commit_on(store, "main", {"README.md": "main\n"})
    with pytest.raises(MergeConflict):
        store.update_branch(REPO, "pr", "main", committer=BOT)
    assert store.ref_sha(REPO, "pr") == head


def test_is_ancestor(store: GitStore) -> None:
    root = store.ref_sha(REPO, "main")
    child = commit_on(store, "pr", {"x": "1\n"})
    assert store.is_ancestor(REPO, root, child)
    assert not store.is_ancestor(REPO, child, root)


def test_checkout_and_read_file(store: GitStore, tmp_path: Path) -> None:
    sha = store.ref_sha(REPO, "main")
    dest = tmp_path / "co"
    store.checkout(REPO, sha, dest)
    assert (dest / "README.md").read_text() == "hello\n"
    assert (dest / "app" / "main.py").read_text() == "print(1)\n"
    assert not (dest / ".git").exists()
    assert not (store.path(REPO) / "index").exists(), "the bare repository is left as it was"
    assert store.read_file(REPO, "main", "app/main.py") == b"print(1)\n"
    assert store.read_file(REPO, "main", "missing.txt") is None
    assert store.read_file(REPO, "main", "app") is None
    assert store.read_file(REPO, "nope", "README.md") is None


def test_concurrent_merges_all_land(store: GitStore) -> None:
    heads = [commit_on(store, f"pr{i}", {f"f{i}.txt": f"{i}\n"}) for i in range(6)]
    errors: list[BaseException] = []

    def land(sha: str) -> None:
        try:
            store.merge(REPO, "main", sha, method="squash", title=sha, message="", committer=BOT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=land, args=(h,)) for h in heads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(6):
        assert store.read_file(REPO, "main", f"f{i}.txt") == f"{i}\n".encode()


def test_invalid_names_refused(store: GitStore) -> None:
    with pytest.raises(Exception, match="invalid"):
        store.path("../etc")
    with pytest.raises(Exception, match="invalid"):
        store.set_branch(REPO, "-x", store.ref_sha(REPO, "main"))
