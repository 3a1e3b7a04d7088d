"""Code owners on fakehub: who must approve a pull request when a ``pull_request`` rule sets
``require_code_owner_review``.

GitHub reads the first of ``.github/CODEOWNERS``, ``CODEOWNERS``, ``docs/CODEOWNERS`` on the base
branch; the last matching line names a file's owners. Patterns are gitignore-like (``*`` and
``?`` within a directory, ``**`` across, a leading or inner ``/`` anchors at the root, a trailing
``/`` matches directories, a pattern also owns what is under a directory it names unless its
last part has a wildcard). fakehub has no teams: only ``@user`` owners are checked, so a file
owned only by teams or e-mail addresses needs no approval here (on GitHub it would).
"""

from __future__ import annotations

import re

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


def _regex(pattern: str) -> re.Pattern[str] | None:
    if pattern.startswith("!") or "[" in pattern or not pattern.strip("/"):
        return None
    body = pattern.strip("/")
    parts = []
    for piece in re.split(r"(\*\*/|/\*\*$|\*\*|\*|\?)", body):
        parts.append(
            {"**/": "(?:.*/)?", "/**": "/.*", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                piece, re.escape(piece.replace("\\", ""))
            )
        )
    last = body.rsplit("/", 1)[-1]
    if pattern.endswith("/"):
        tail = "/.*"
    elif last != "**" and ("*" in last or "?" in last):
        tail = ""
    else:
        tail = "(?:/.*)?"
    head = "" if "/" in pattern.rstrip("/") else "(?:.*/)?"
    return re.compile(head + "".join(parts) + tail)


def owners(text: str, path: str) -> list[str]:
    """The user logins (lower case) owning ``path`` under the CODEOWNERS ``text``."""
    found: list[str] = []
    for line in text.splitlines():
        tokens = line.split("#", 1)[0].split() if not line.lstrip().startswith("\\#") else []
        if not tokens:
            continue
        rx = _regex(tokens[0])
        if rx is not None and rx.fullmatch(path):
            found = [t[1:].lower() for t in tokens[1:] if t.startswith("@") and "/" not in t]
    return found


def unapproved(text: str, paths: list[str], approvers: set[str]) -> list[str]:
    """The user owners of the first changed path that no owner of it approved, or []."""
    for path in paths:
        users = owners(text, path)
        if users and not approvers.intersection(users):
            return users
    return []
