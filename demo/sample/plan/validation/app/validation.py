"""Input validation shared by the account features."""

from __future__ import annotations

import re

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NAME_MAX = 80


def normalize_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: str) -> bool:
    return bool(EMAIL.match(normalize_email(email)))


def clean_name(name: str) -> str:
    """A display name with runs of whitespace collapsed; ValueError when empty or too long."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("a name is required")
    if len(cleaned) > NAME_MAX:
        raise ValueError(f"a name has at most {NAME_MAX} characters")
    return cleaned
