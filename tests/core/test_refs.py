from __future__ import annotations

import pytest

from bot.core.model import IssueRef, branch_name
from bot.core.refs import closing_refs, parse_blockers

REPO = "octo/demo"


def refs(*numbers: int, repo: str = REPO) -> tuple[IssueRef, ...]:
    return tuple(IssueRef(repo, n) for n in numbers)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Blocked by #3", refs(3)),
        ("blocked by #3, #4 and #5", refs(3, 4, 5)),
        ("DEPENDS ON #7 & #8", refs(7, 8)),
        ("depends upon #9", refs(9)),
        ("Blocked on #10", refs(10)),
        ("Do this after #11.", refs(11)),
        ("**Depends on:** #12", refs(12)),
        ("Blocked-by: #13", refs(13)),
        ("blocked by #1 #2", refs(1, 2)),
    ],
)
def test_parse_blockers_keywords_and_lists(body: str, expected: tuple[IssueRef, ...]) -> None:
    assert parse_blockers(body, REPO) == expected


def test_parse_blockers_cross_repo_and_urls_on_any_host() -> None:
    body = (
        "Blocked by octo/other#5 and https://github.com/octo/lib/issues/6\n"
        "depends on http://127.0.0.1:8123/octo/demo/issues/7/ and "
        "https://ghe.example.com/acme/api/issues/8#issuecomment-1\n"
    )
    assert parse_blockers(body, REPO) == (
        IssueRef("octo/other", 5),
        IssueRef("octo/lib", 6),
        IssueRef(REPO, 7),
        IssueRef("acme/api", 8),
    )


def test_parse_blockers_task_list_lines() -> None:
    body = "## Plan\n- [ ] blocked by #3\n- [x] Blocked by #4\n* [ ] depends on #5\n"
    assert parse_blockers(body, REPO) == refs(3, 4, 5)


def test_parse_blockers_ignores_code() -> None:
    body = (
        "Blocked by #1\n"
        "```\nblocked by #2\n```\n"
        "~~~python\ndepends on #3\n~~~\n"
        "Write `blocked by #4` to declare one. ``depends on #5``\n"
        "    after all: depends on #6\n"
    )
    assert parse_blockers(body, REPO) == refs(1, 6)


def test_parse_blockers_unclosed_fence_hides_the_rest() -> None:
    assert parse_blockers("blocked by #1\n```\nblocked by #2\n", REPO) == refs(1)


def test_parse_blockers_dedupes_in_order_and_keeps_repo_spelling() -> None:
    body = "blocked by #4, #2\ndepends on OCTO/Demo#4 and octo/demo#2, #9"
    assert parse_blockers(body, REPO) == refs(4, 2, 9)


def test_parse_blockers_needs_a_keyword_right_before_the_ref() -> None:
    body = (
        "See #3. Fixes #4. after reading #5 we know.\n"
        "blocked by foo#6, &#7; blocked by #8abc\n"
        "unblocked by #9? rebooted after #10"
    )
    # "rebooted after #10" still reads as "after #10"; "unblocked" is not "blocked".
    assert parse_blockers(body, REPO) == refs(10)


def test_parse_blockers_keeps_self_references_for_the_caller() -> None:
    assert parse_blockers("blocked by #5", REPO) == refs(5)


def test_parse_blockers_empty() -> None:
    assert parse_blockers("", REPO) == ()


def test_closing_refs() -> None:
    body = (
        "Closes #5.\nfixes octo/x#2, resolves #7\nFixed #8; resolved: #9; close #10\nblocked by #11"
    )
    assert closing_refs(body, REPO) == (
        IssueRef(REPO, 5),
        IssueRef("octo/x", 2),
        *refs(7, 8, 9, 10),
    )
    assert closing_refs("prefixes #3 `closes #4`", REPO) == ()


def test_issue_ref_str_and_parse_round_trip() -> None:
    ref = IssueRef("octo/demo.js", 42)
    assert str(ref) == "octo/demo.js#42"
    assert IssueRef.parse(str(ref)) == ref
    for bad in ("#3", "octo/demo", "octo#3", "a/b#x", "a/b/c#1"):
        with pytest.raises(ValueError, match="not an issue reference"):
            IssueRef.parse(bad)


@pytest.mark.parametrize(
    ("number", "title", "expected"),
    [
        (5, "Add /users endpoint", "stoneforge/5-add-users-endpoint"),
        (6, "Ünïcode — naïve café!", "stoneforge/6-unicode-naive-cafe"),
        (7, "A very long title that goes on and on and on forever", None),
        (8, "   ", "stoneforge/8-task"),
        (9, "x" * 60, "stoneforge/9-" + "x" * 40),
    ],
)
def test_branch_name(number: int, title: str, expected: str | None) -> None:
    name = branch_name(number, title)
    assert name == branch_name(number, title)
    slug = name.removeprefix(f"stoneforge/{number}-")
    assert len(slug) <= 40
    assert not slug.endswith("-")
    assert slug == slug.lower()
    assert all(part.isalnum() and part.isascii() for part in slug.split("-"))
    if expected is not None:
        assert name == expected
    else:
        assert name == "stoneforge/7-a-very-long-title-that-goes-on-and-on"
