"""The user directory: profiles, searchable, a page at a time."""

from __future__ import annotations

from app.pagination import Page, paginate
from app.profiles import Profile, ProfileStore


class Directory:
    def __init__(self, profiles: ProfileStore) -> None:
        self.profiles = profiles

    def page(self, page: int = 1, per_page: int = 10) -> Page[Profile]:
        return paginate(self.profiles.all(), page, per_page)

    def search(self, text: str) -> list[Profile]:
        """Profiles whose display name contains ``text``, case-insensitively."""
        needle = text.strip().casefold()
        return [p for p in self.profiles.all() if needle in p.display_name.casefold()]
