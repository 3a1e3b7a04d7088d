"""Version 2 of the users API: bearer-token (JWT) auth and a counted envelope.

v1 stays as it is for existing clients.
"""

from __future__ import annotations

from app.api import Request, Response, Router
from app.auth import InvalidToken, secret_from_env, verify_token
from app.users import DuplicateEmail, UserStore

UNAUTHORISED = Response(401, {"error": "a valid bearer token is required"})


def register_v2(router: Router, users: UserStore, secret: bytes | None = None) -> None:
    """Add the /api/v2/users routes to `router`."""
    key = secret if secret is not None else secret_from_env()

    def caller(request: Request) -> int | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return None
        try:
            return verify_token(token, key)
        except InvalidToken:
            return None

    def list_users(request: Request) -> Response:
        if caller(request) is None:
            return UNAUTHORISED
        items = [user.to_dict() for user in users.all()]
        return Response(200, {"users": items, "count": len(items)})

    def create_user(request: Request) -> Response:
        if caller(request) is None:
            return UNAUTHORISED
        name = request.body.get("name", "").strip()
        email = request.body.get("email", "").strip()
        if not name or "@" not in email:
            return Response(400, {"error": "name and a valid email are required"})
        try:
            user = users.add(name, email)
        except DuplicateEmail:
            return Response(409, {"error": "email already registered"})
        return Response(201, {"user": user.to_dict()})

    router.add("GET", "/api/v2/users", list_users)
    router.add("POST", "/api/v2/users", create_user)
