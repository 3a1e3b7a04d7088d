"""A tiny router: maps (method, path) pairs such as ("GET", "/api/v1/users") to handlers.

No web framework: a request is a plain dataclass, so the API can be exercised from unit tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.users import DuplicateEmail, UserStore


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=dict)
    client: str = "127.0.0.1"


@dataclass(frozen=True)
class Response:
    status: int
    body: object


Handler = Callable[[Request], Response]


class Router:
    """Dispatches a request to the handler registered for its method and path."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def routes(self) -> list[tuple[str, str]]:
        return sorted(self._routes)

    def dispatch(self, request: Request) -> Response:
        handler = self._routes.get((request.method.upper(), request.path))
        if handler is None:
            return Response(404, {"error": f"no route for {request.method} {request.path}"})
        return handler(request)


def create_app(store: UserStore | None = None) -> Router:
    """Build the service's router."""
    users = store if store is not None else UserStore()
    router = Router()

    def list_users(request: Request) -> Response:
        return Response(200, [user.to_dict() for user in users.all()])

    def create_user(request: Request) -> Response:
        name = request.body.get("name", "").strip()
        email = request.body.get("email", "").strip()
        if not name or "@" not in email:
            return Response(400, {"error": "name and a valid email are required"})
        try:
            user = users.add(name, email)
        except DuplicateEmail:
            return Response(409, {"error": f"{email} is already registered"})
        return Response(201, user.to_dict())

    router.add("GET", "/api/v1/users", list_users)
    router.add("POST", "/api/v1/users", create_user)
    return router
