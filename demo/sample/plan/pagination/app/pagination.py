"""Pages of a list: what a listing endpoint returns instead of everything at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def paginate(items: Sequence[T], page: int = 1, per_page: int = 10) -> Page[T]:
    """Page ``page`` (1-based) of ``items``; ValueError for a page or size below 1."""
    if page < 1 or per_page < 1:
        raise ValueError("page and per_page start at 1")
    start = (page - 1) * per_page
    return Page(list(items[start : start + per_page]), page, per_page, len(items))
