"""Issue references written in issue and pull request text.

``parse_blockers`` reads "blocked by" style dependencies from an issue body (the text fallback
next to GitHub's native dependencies and sub-issues); ``closing_refs`` reads GitHub's closing
keywords from a pull request body. Text inside fenced code blocks and inline code is ignored.
Neither function drops an issue that names itself: the caller knows which issue it is reading.
"""

from __future__ import annotations

import re

from bot.core.model import IssueRef

_OWNER = r"[A-Za-z0-9][A-Za-z0-9-]*"
_NAME = r"[A-Za-z0-9_.-]+"
# One reference: an issue URL on any host (GitHub, GitHub Enterprise Server or a local stand-in),
# owner/repo#N, #N.
_REF_NAMED = (
    rf"(?:(?:https?://[^\s/]+|(?<![\w.])(?:www\.)?github\.com)/(?P<u_repo>{_OWNER}/{_NAME})"
    rf"/issues/(?P<u_num>\d+)(?!\w)/?(?:#[\w-]*)?"
    rf"|(?<![\w/#])(?P<l_repo>{_OWNER}/{_NAME})#(?P<l_num>\d+)\b"
    rf"|(?<![\w/#&])#(?P<s_num>\d+)\b)"
)
_REF_RE = re.compile(_REF_NAMED)
_REF = re.sub(r"\(\?P<\w+>", "(", _REF_NAMED)  # the same pattern without group names
# Separators between references in one list: commas, "and", "&", whitespace.
_SEP = r"(?:\s*(?:,|&|\band\b)\s*|\s+)(?:and\s+)?"
# After the keyword: optional markdown emphasis and a colon, e.g. "**Depends on:** #3".
_LEAD = r"[*_]*\s*:?[*_]*\s*"
_REF_LIST = rf"(?P<refs>{_REF}(?:{_SEP}{_REF})*)"

_BLOCKER_RE = re.compile(
    rf"\b(?:blocked[\s-]+by|blocked[\s-]+on|depends[\s-]+on|depends[\s-]+upon|after)\b"
    rf"{_LEAD}{_REF_LIST}",
    re.IGNORECASE,
)
_CLOSING_RE = re.compile(
    rf"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b{_LEAD}{_REF_LIST}",
    re.IGNORECASE,
)
# Fenced blocks (``` or ~~~, closed by the same fence or the end of the text), then inline code.
_FENCE_RE = re.compile(
    r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=fence)[`~]*[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_INLINE_CODE_RE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)


def parse_blockers(body: str, repo: str) -> tuple[IssueRef, ...]:
    """Issues named after ``blocked by``/``blocked on``/``depends on``/``depends upon``/``after``.

    ``#N`` means an issue in ``repo``. Deduplicated, in order of appearance.
    """
    return _collect(_BLOCKER_RE, body, repo)


def closing_refs(body: str, repo: str) -> tuple[IssueRef, ...]:
    """Issues named after ``close(s|d)``/``fix(es|ed)``/``resolve(s|d)``, as GitHub reads them."""
    return _collect(_CLOSING_RE, body, repo)


def strip_code(text: str) -> str:
    """``text`` with fenced code blocks and inline code spans blanked out."""
    text = _FENCE_RE.sub(" ", text)
    return _INLINE_CODE_RE.sub(" ", text)


def _collect(pattern: re.Pattern[str], body: str, repo: str) -> tuple[IssueRef, ...]:
    seen: dict[IssueRef, None] = {}
    for match in pattern.finditer(strip_code(body or "")):
        for ref_match in _REF_RE.finditer(match.group("refs")):
            seen.setdefault(_to_ref(ref_match, repo), None)
    return tuple(seen)


def _to_ref(match: re.Match[str], repo: str) -> IssueRef:
    if match.group("s_num") is not None:
        return IssueRef(repo, int(match.group("s_num")))
    if match.group("l_repo") is not None:
        named, number = match.group("l_repo"), match.group("l_num")
    else:
        named, number = match.group("u_repo"), match.group("u_num")
    # GitHub repository names are case-insensitive: keep the caller's spelling for its own repo.
    if named.lower() == repo.lower():
        named = repo
    return IssueRef(named, int(number))
