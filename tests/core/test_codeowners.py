"""CODEOWNERS matching (gitignore-like, last match wins) and the files awaiting an owner."""

from __future__ import annotations

import pytest

from bot.core.codeowners import awaiting_owners, owners_of, parse_codeowners, user_owners

# The example from GitHub's documentation, trimmed.
EXAMPLE = """\
# These owners are the default owners for everything in the repo.
*       @global-owner1 @global-owner2

# Order is important; the last matching pattern takes the most precedence.
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
/build/cache/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
"""


@pytest.mark.parametrize(
    ("path", "owners"),
    [
        ("README.md", ("@global-owner1", "@global-owner2")),
        ("src/app.js", ("@js-owner",)),
        ("main.go", ("docs@example.com",)),
        ("notes/a.txt", ("@octo-org/octocats",)),
        ("build/logs/today.log", ("@octocat",)),  # **/logs comes after /build/logs/
        ("x/build/logs/today.log", ("@octocat",)),
        ("build/cache/a.bin", ("@doctocat",)),
        ("x/build/cache/a.bin", ("@global-owner1", "@global-owner2")),  # anchored at the root
        ("docs/getting-started.md", ("@doctocat",)),  # /docs/ comes after docs/*
        ("docs/build-app/troubleshooting.md", ("@doctocat",)),
        ("web/apps/index.html", ("@octocat",)),  # apps/ at any depth
        ("apps/github/main.py", ()),  # the last match has no owners: unowned
        ("apps/other/main.py", ("@octocat",)),
        ("scripts/deploy.sh", ("@doctocat", "@octocat")),
        ("deep/a/logs/x.txt", ("@octocat",)),
    ],
)
def test_the_last_matching_line_names_the_owners(path: str, owners: tuple[str, ...]) -> None:
    assert owners_of(parse_codeowners(EXAMPLE), path) == owners


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("*.md", ["a.md", "x/y/a.md"], ["a.mdx", "md"]),
        ("docs/*", ["docs/a.md"], ["docs/a/b.md", "x/docs/a.md"]),  # one level, anchored
        ("docs", ["docs", "docs/a/b.md", "x/docs/a.md"], ["docsy/a.md"]),
        ("/docs", ["docs/a.md"], ["x/docs/a.md"]),
        ("src/", ["src/a.py", "lib/src/a.py"], ["src"]),  # directories only
        ("a/**/b.py", ["a/b.py", "a/x/y/b.py"], ["b.py", "c/a/b.py"]),
        ("**/test_*.py", ["test_a.py", "t/u/test_a.py"], ["t/atest_a.py"]),
        ("lib/**", ["lib/a", "lib/x/y"], ["lib", "a/lib/x"]),
        ("?.txt", ["a.txt", "d/b.txt"], ["ab.txt"]),
        ("\\#notes", ["#notes"], ["notes"]),
        ("a.b", ["a.b"], ["axb"]),  # dots are literal
    ],
)
def test_patterns_match_as_gitignore_does(pattern: str, yes: list[str], no: list[str]) -> None:
    (rule,) = parse_codeowners(f"{pattern} @o")
    assert [p for p in yes if rule.matches(p)] == yes
    assert [p for p in no if rule.matches(p)] == []


def test_comments_blank_and_unsupported_lines_are_skipped() -> None:
    rules = parse_codeowners("# c\n\n!keep.md @a\n[ab].md @b\n*.md @c # trailing\n")
    assert [(r.pattern, r.owners) for r in rules] == [("*.md", ("@c",))]


def test_only_users_are_checked_and_any_one_owner_approving_is_enough() -> None:
    rules = parse_codeowners("* @Lead\n/api/ @alice @bob\n/ui/ @org/design\n/x/\n")
    files = ["README.md", "api/a.py", "api/b.py", "ui/c.css", "x/y"]
    assert user_owners(["@Lead", "@org/team", "a@example.com"]) == ("lead",)
    assert awaiting_owners(rules, files, []) == (
        ("README.md", ("lead",)),
        ("api/a.py", ("alice", "bob")),
        ("api/b.py", ("alice", "bob")),
    ), "a team-owned file is left to GitHub; an unowned one needs no owner"
    assert awaiting_owners(rules, files, ["BOB"]) == (("README.md", ("lead",)),)
    assert awaiting_owners(rules, files, ["bob", "lead"]) == ()


def test_no_codeowners_file_owns_nothing() -> None:
    assert awaiting_owners(parse_codeowners(""), ["a.py"], []) == ()
