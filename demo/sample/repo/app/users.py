"""In-memory user store with unique email addresses."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class DuplicateEmail(ValueError):
    """The email address is already registered."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class UserStore:
    """Keeps users in memory, keyed by id; emails are stored lower-cased."""

    def __init__(self) -> None:
        self._users: dict[int, User] = {}
        self._next_id = 1

    def add(self, name: str, email: str) -> User:
        if self.find_by_email(email) is not None:
            raise DuplicateEmail(email)
        user = User(id=self._next_id, name=name, email=email.strip().lower())
        self._users[user.id] = user
        self._next_id += 1
        return user

    def get(self, user_id: int) -> User | None:
        return self._users.get(user_id)

    def find_by_email(self, email: str) -> User | None:
        for user in self._users.values():
            if user.email == email:
                return user
        return None

    def all(self) -> list[User]:
        return sorted(self._users.values(), key=lambda user: user.id)
