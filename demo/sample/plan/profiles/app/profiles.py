"""Profiles: the display name and bio a user shows to others."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from app.validation import clean_name

BIO_MAX = 500


@dataclass(frozen=True)
class Profile:
    user_id: int
    display_name: str
    bio: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class ProfileStore:
    def __init__(self) -> None:
        self._profiles: dict[int, Profile] = {}

    def set(self, user_id: int, display_name: str, bio: str = "") -> Profile:
        if len(bio) > BIO_MAX:
            raise ValueError(f"a bio has at most {BIO_MAX} characters")
        profile = Profile(user_id, clean_name(display_name), bio.strip())
        self._profiles[user_id] = profile
        return profile

    def get(self, user_id: int) -> Profile | None:
        return self._profiles.get(user_id)

    def all(self) -> list[Profile]:
        return sorted(self._profiles.values(), key=lambda profile: profile.user_id)
