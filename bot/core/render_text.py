"""Formatting the bot's Markdown shares: links to issues and pull requests, times, money,
inline code and table cells, and the link to one agent try's transcript.

Pure: values in, text out (``bot.core.render`` for the status comment, ``bot.core.render_pull``
for the pull request body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.model import IssueRef


@dataclass(frozen=True)
class TranscriptLink:
    """Where one agent try's transcript can be read."""

    attempt: int
    try_number: int
    url: str


def issue_link(ref: IssueRef, html_base: str, repo: str = "") -> str:
    """``[#N](url)`` for an issue in ``repo``, ``[owner/name#N](url)`` for any other."""
    text = f"#{ref.number}" if ref.repo == repo else str(ref)
    return f"[{text}]({html_base.rstrip('/')}/{ref.repo}/issues/{ref.number})"


def pull_link(repo: str, number: int, html_base: str) -> str:
    return f"[#{number}]({html_base.rstrip('/')}/{repo}/pull/{number})"


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 12 s"``, ``"2 h 05 min"``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_utc(when: float) -> str:
    """An epoch time as UTC, to the second (proleptic Gregorian arithmetic: no clock, no
    time zone database, as the core may not import ``datetime``)."""
    days, second = divmod(int(when), 86400)
    era, day = divmod(days + 719468, 146097)  # days since 0000-03-01, in 400-year eras
    year_of_era = (day - day // 1460 + day // 36524 - day // 146096) // 365
    day_of_year = day - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153  # 0 = March
    day_of_month = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = era * 400 + year_of_era + (month <= 2)
    hour, rest = divmod(second, 3600)
    return (
        f"{year:04d}-{month:02d}-{day_of_month:02d} {hour:02d}:{rest // 60:02d}:{rest % 60:02d} UTC"
    )


def format_cost(usd: float) -> str:
    if 0 < usd < 0.01:
        return "< $0.01"
    return f"${usd:,.2f}"


def cell(text: str) -> str:
    """Text safe inside one Markdown table cell: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def code(text: str) -> str:
    """Inline code that survives backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
