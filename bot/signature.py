"""The secrets the bot checks: webhook signatures (``X-Hub-Signature-256``, in constant time),
bearer tokens, and the hashes it keeps of the tokens and claim secrets it hands out."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True only for a ``sha256=`` signature of exactly these bytes.

    SHA-1 (``sha1=``) signatures are refused: they are legacy and weaker.
    """
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header)


def token_hash(token: str) -> str:
    """What the store keeps of a token or secret we hand out: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
