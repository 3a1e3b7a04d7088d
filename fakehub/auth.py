"""Who is calling, and may they do this: App JWTs, installation tokens, user tokens.

``authenticate`` turns an ``Authorization`` header into an :class:`Actor` or raises
:class:`ApiError` (401 with GitHub's "Bad credentials" body). ``require_repo`` checks an actor's
access to one repository for one permission (``issues``, ``pull_requests``, ``contents``,
``checks``, ``statuses``, ``metadata``) at ``read`` or ``write``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

from fakehub.records import App, Installation, InstallationToken, Repo, User
from fakehub.state import PERMISSION_LEVELS, State

DOCS = "https://docs.github.com/rest"
JWT_MAX_LIFETIME_S = 600
CLOCK_SKEW_S = 60
# Which repository permission a user role grants for each App-style permission.
_ROLE_GRANTS = {
    "read": {"read"},
    "triage": {"read", "issues"},
    "write": {"read", "issues", "write"},
    "maintain": {"read", "issues", "write"},
    "admin": {"read", "issues", "write"},
}


@dataclass
class ApiError(Exception):
    """An HTTP error in GitHub's body shape: ``{message, documentation_url, status}``."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    documentation_url: str = DOCS

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "documentation_url": self.documentation_url}
        if self.errors is not None:
            out["errors"] = self.errors
        out["status"] = str(self.status)
        return out


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def bad_credentials() -> ApiError:
    return ApiError(401, "Bad credentials")


def forbidden_integration() -> ApiError:
    return ApiError(403, "Resource not accessible by integration")


@dataclass
class Actor:
    kind: Literal["app", "installation", "user"]
    user: User  # the acting account: the App's bot user for JWTs and installation tokens
    app: App | None = None
    token: InstallationToken | None = None

    @property
    def installation(self) -> Installation | None:
        return self.token.installation if self.token else None


def authenticate(state: State, header: str | None, *, now: float | None = None) -> Actor:
    if not header:
        raise ApiError(401, "Requires authentication")
    scheme, _, credential = header.strip().partition(" ")
    scheme, credential = scheme.lower(), credential.strip()
    if scheme not in ("bearer", "token") or not credential:
        raise bad_credentials()
    now = time.time() if now is None else now
    if scheme == "bearer" and credential.count(".") == 2:
        app = verify_app_jwt(state, credential, now=now)
        return Actor("app", app.bot, app=app)
    with state.lock:
        tok = state.tokens.get(credential)
        if tok is not None:
            if tok.expires_at <= now:
                raise bad_credentials()
            return Actor(
                "installation", tok.installation.app.bot, app=tok.installation.app, token=tok
            )
        user = state.user_by_token(credential)
    if user is None:
        raise bad_credentials()
    return Actor("user", user)


def verify_app_jwt(state: State, token: str, *, now: float) -> App:
    """Verify an App JWT as GitHub does: RS256 with the App's public key, ``iss`` the App id or
    client id, lifetime at most 10 minutes, not expired (60 s skew)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise ApiError(401, "A JSON web token could not be decoded") from None
    app = state.app_by_issuer(claims.get("iss"))
    if app is None or header.get("alg") != "RS256":
        raise ApiError(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(
            token,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"], "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise ApiError(401, "A JSON web token could not be decoded") from None
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise ApiError(401, "A JSON web token could not be decoded")
    if exp - iat > JWT_MAX_LIFETIME_S or exp > now + JWT_MAX_LIFETIME_S + CLOCK_SKEW_S:
        raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
    if exp <= now - CLOCK_SKEW_S:
        raise ApiError(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires",
        )
    if iat > now + CLOCK_SKEW_S:
        raise ApiError(
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued",
        )
    return app


def require_app(actor: Actor) -> App:
    if actor.kind != "app" or actor.app is None:
        raise ApiError(
            401,
            "A JSON web token could not be decoded",
            documentation_url="https://docs.github.com/rest/apps/apps",
        )
    return actor.app


def reject_jwt(actor: Actor) -> None:
    if actor.kind == "app":
        raise forbidden_integration()


def require_repo(
    state: State, actor: Actor, repo: Repo, permission: str, level: str = "read"
) -> None:
    """Raise 404/403 unless ``actor`` may use ``permission`` at ``level`` on ``repo``."""
    reject_jwt(actor)
    if actor.kind == "installation":
        assert actor.token is not None
        tok = actor.token
        in_scope = repo.id in tok.repository_ids and repo.id in tok.installation.repository_ids
        if not in_scope:
            if repo.private:
                raise not_found()
            if level == "read":
                return
            raise forbidden_integration()
        granted = tok.permissions.get(permission) or ("read" if permission == "metadata" else None)
        if granted is None or PERMISSION_LEVELS.get(granted, 0) < PERMISSION_LEVELS[level]:
            raise forbidden_integration()
        return
    role = state.permission(repo, actor.user)
    if role == "none":
        raise not_found()
    grants = _ROLE_GRANTS.get(role, set())
    if level == "read":
        return
    needed = "issues" if permission == "issues" else "write"
    if needed not in grants:
        raise ApiError(403, "Must have admin rights to Repository.", documentation_url=DOCS)


def git_authorize(state: State, full_name: str, username: str, password: str, write: bool) -> bool:
    """Smart-HTTP access: an installation token (contents read/write) or a user token."""
    repo = state.repo(full_name)
    if repo is None:
        return False
    try:
        actor = authenticate(state, f"token {password}")
        require_repo(state, actor, repo, "contents", "write" if write else "read")
    except ApiError:
        return False
    if actor.kind == "installation" and actor.token is not None:
        # Even for public repositories, a push needs the repository in the token's scope.
        return not write or repo.id in actor.token.repository_ids
    return True
