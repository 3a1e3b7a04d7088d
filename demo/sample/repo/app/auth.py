"""Session-token authentication.

A login creates a random token and remembers it server-side; each request looks the token up
again. Sessions therefore live in one process and are lost on restart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable


class SessionStore:
    """Maps opaque session tokens to user ids, with a fixed time to live."""

    def __init__(self, ttl_seconds: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._sessions: dict[str, tuple[int, float]] = {}

    def login(self, user_id: int) -> str:
        token = secrets.token_urlsafe(24)
        self._sessions[token] = (user_id, self._clock() + self._ttl)
        return token

    def user_for(self, token: str) -> int | None:
        entry = self._sessions.get(token)
        if entry is None:
            return None
        user_id, expires = entry
        if self._clock() >= expires:
            del self._sessions[token]
            return None
        return user_id

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)
