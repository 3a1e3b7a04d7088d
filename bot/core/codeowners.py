"""CODEOWNERS: who owns each changed file, and which files still wait for an owner's approval.

GitHub reads the first of ``.github/CODEOWNERS``, ``CODEOWNERS`` and ``docs/CODEOWNERS`` on the
base branch (``LOCATIONS``). Each line is a pattern and its owners; ``#`` starts a comment. The
patterns follow gitignore's rules, with GitHub's exceptions, as this module implements them:

- the **last** matching line wins; a matching line with no owners leaves the file unowned;
- a pattern with no slash but a trailing one (``*.js``, ``docs``, ``apps/``) matches at any
  depth; one with a leading or inner slash (``/build``, ``docs/api``) is anchored at the root;
- ``*`` and ``?`` never cross a ``/``; ``**/`` is any number of directories, ``/**`` at the end
  everything inside;
- a pattern matches a path or any directory above it (``docs`` owns ``docs/a/b.md``), except a
  pattern whose last part has a wildcard: ``docs/*`` owns ``docs/a.md``, not ``docs/a/b.md``;
- a trailing ``/`` matches directories only; ``!`` negation and ``[...]`` ranges are not
  supported by GitHub: such lines are skipped, as GitHub skips invalid lines; ``\\#`` escapes.

Owners are ``@user``, ``@org/team`` or an e-mail address. Only users are checked here: a team's
or an e-mail's approval cannot be resolved without more of GitHub, so a file owned only by
teams or e-mails is left to GitHub's own merge state (``blocked`` until they approve).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


@dataclass(frozen=True)
class OwnerRule:
    pattern: str
    owners: tuple[str, ...]  # as written: "@user", "@org/team", "name@example.com"
    regex: str  # the compiled pattern's source (kept hashable and comparable)

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.regex, path.lstrip("/")) is not None


def parse_codeowners(text: str) -> tuple[OwnerRule, ...]:
    """The rules of a CODEOWNERS file, in file order; unsupported lines are skipped."""
    rules: list[OwnerRule] = []
    for raw in text.splitlines():
        tokens = _tokens(raw)
        if not tokens:
            continue
        pattern, owners = tokens[0], tuple(tokens[1:])
        regex = _compile(pattern)
        if regex is not None:
            rules.append(OwnerRule(pattern, owners, regex))
    return tuple(rules)


def owners_of(rules: Sequence[OwnerRule], path: str) -> tuple[str, ...]:
    """The owners of ``path``: those of the last rule that matches it (none: unowned)."""
    for rule in reversed(rules):
        if rule.matches(path):
            return rule.owners
    return ()


def user_owners(owners: Sequence[str]) -> tuple[str, ...]:
    """The user logins among ``owners`` (no teams, no e-mail addresses), lower case."""
    return tuple(o[1:].lower() for o in owners if o.startswith("@") and "/" not in o)


def awaiting_owners(
    rules: Sequence[OwnerRule], files: Sequence[str], approvers: Collection[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The changed ``files`` that a user owns and no owning user has approved (``approvers``:
    logins whose latest verdict approves), each with its user owners; in ``files`` order."""
    approved = {a.lower() for a in approvers}
    waiting = []
    for path in files:
        users = user_owners(owners_of(rules, path))
        if users and not approved.intersection(users):
            waiting.append((path, users))
    return tuple(waiting)


def _tokens(line: str) -> list[str]:
    """Split a line on whitespace, dropping a comment (``#`` at a token's start, unescaped)."""
    out: list[str] = []
    for token in line.split():
        if token.startswith("#"):
            break
        out.append(token)
    return out


def _compile(pattern: str) -> str | None:
    if pattern.startswith("!") or "[" in pattern or pattern in ("/", ""):
        return None
    dir_only = pattern.endswith("/")
    anchored = "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    if not body:
        return None
    out: list[str] = []
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("/**", i) and i + 3 == len(body):
            out.append("/.*")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        elif body[i] == "\\" and i + 1 < len(body):
            out.append(re.escape(body[i + 1]))
            i += 2
        else:
            out.append(re.escape(body[i]))
            i += 1
    last = body.rsplit("/", 1)[-1]
    wild_tail = last != "**" and ("*" in last or "?" in last)
    if dir_only:
        tail = "/.*"
    elif wild_tail:
        tail = ""
    else:
        tail = "(?:/.*)?"
    prefix = "" if anchored else "(?:.*/)?"
    return prefix + "".join(out) + tail
