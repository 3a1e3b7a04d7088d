"""Stateless bearer tokens shaped like a JWT: header.payload.signature.

The signature is HMAC-SHA256 over the first two parts with a server secret, so any process that
holds the secret verifies a token without a session table. Only HS256 is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

DEFAULT_TTL_SECONDS = 3600
_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidToken(ValueError):
    """The token is malformed, tampered with, signed with another secret, or expired."""


def secret_from_env() -> bytes:
    """The signing secret: APP_TOKEN_SECRET, or a development default."""
    return os.environ.get("APP_TOKEN_SECRET", "dev-only-secret-change-me").encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str, secret: bytes) -> str:
    return _b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def issue_token(
    user_id: int,
    secret: bytes,
    *,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    """A signed token for `user_id`, valid for `ttl_seconds`."""
    issued = time.time() if now is None else now
    claims = {"sub": user_id, "iat": int(issued), "exp": int(issued + ttl_seconds)}
    header = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_sign(signing_input, secret)}"


def verify_token(token: str, secret: bytes, *, now: float | None = None) -> int:
    """The user id of a valid token; raises InvalidToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("expected header.payload.signature")
    header_part, payload_part, signature = parts
    expected = _sign(f"{header_part}.{payload_part}", secret)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise InvalidToken("bad signature")
    try:
        header = json.loads(_b64decode(header_part))
        claims = json.loads(_b64decode(payload_part))
    except ValueError:
        raise InvalidToken("undecodable token") from None
    if header != _HEADER or not isinstance(claims, dict):
        raise InvalidToken("unsupported token")
    current = time.time() if now is None else now
    if current >= claims.get("exp", 0):
        raise InvalidToken("token expired")
    subject = claims.get("sub")
    if not isinstance(subject, int):
        raise InvalidToken("token has no subject")
    return subject
