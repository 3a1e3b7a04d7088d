"""The demo's sample repository and the sprint a maintainer files against it.

`SAMPLE_REPO` is the initial commit of a small, framework-free Python users service with its own
stdlib `unittest` suite (`CI_COMMAND`). `SPRINT` is the sprint, in filing order: each issue's body
is prose a maintainer would write plus one `stoneforge-script` block that the demo's script agent
applies (see docs/architecture.md, "The script agent").

Design rules the sprint keeps (tests/demo/test_sample.py proves them with real git):

- Every issue's blockers are filed before it, so `render_body` can name them by number.
- An edit only anchors (`replace`) on text that is on `main` whenever the issue can be dispatched,
  whatever order its independent siblings merged in; `write` is only used for files no
  independent task touches; `append` only for files with a single editor.
- Independent tasks that share a file (`app/api.py`) edit regions far apart, so git's 3-way
  merge ("Update branch") combines them cleanly in either order.
- After any set of merged tasks closed under "blocked by", the repository's tests pass.

This module is data, so it is longer than the house budget for a module.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CI_COMMAND",
    "FULL",
    "OWNER",
    "REPO",
    "SAMPLE_REPO",
    "SPRINT",
    "SprintIssue",
    "script_block",
]

OWNER, REPO = "octo", "demo"  # where the demo creates the sample repository
FULL = f"{OWNER}/{REPO}"

SCRIPT_INFO_STRING = "stoneforge-script"

# -B: no .pyc files, so fast successive checkouts never run stale bytecode.
CI_COMMAND: list[str] = [
    sys.executable,
    "-B",
    "-m",
    "unittest",
    "discover",
    "-s",
    "tests",
    "-t",
    ".",
    "-q",
]

_PLACEHOLDER = re.compile(r"#\{([a-z0-9-]+)\}")
_SCRIPT_BLOCK = re.compile(
    r"^```" + SCRIPT_INFO_STRING + r"\n(.*?)\n```$", re.DOTALL | re.MULTILINE
)


def script_block(script: dict[str, Any]) -> str:
    """Render a script as the fenced `stoneforge-script` block an issue body carries."""
    text = json.dumps(script, indent=2)
    if "```" in text:
        raise ValueError("a script must not contain a code fence")
    return f"```{SCRIPT_INFO_STRING}\n{text}\n```"


@dataclass(frozen=True, kw_only=True)
class SprintIssue:
    """One issue of the sprint.

    `body` names each text blocker as "Blocked by #{key}"; `render_body` swaps in the real issue
    numbers. Native blockers are linked through the issue-dependency API and not named in the body.
    """

    key: str
    title: str
    body: str
    blocked_by_text: tuple[str, ...] = ()
    blocked_by_native: tuple[str, ...] = ()
    labels: tuple[str, ...] = ("agent-ready",)
    sleep: float
    # What the maintainer says when this issue's pull request first opens: the demo requests
    # changes with it (its script block is the change asked for) and approves the revision.
    review: str | None = None

    def __post_init__(self) -> None:
        named = set(_PLACEHOLDER.findall(self.body))
        if named != set(self.blocked_by_text):
            raise ValueError(f"{self.key}: body names {sorted(named)}, text blockers differ")
        if self.script.get("sleep") != self.sleep:
            raise ValueError(f"{self.key}: script sleep differs from the issue's sleep")

    @property
    def blocked_by(self) -> tuple[str, ...]:
        return self.blocked_by_text + self.blocked_by_native

    @property
    def script(self) -> dict[str, Any]:
        match = _SCRIPT_BLOCK.search(self.body)
        if match is None:
            raise ValueError(f"{self.key}: no {SCRIPT_INFO_STRING} block")
        script: dict[str, Any] = json.loads(match.group(1))
        return script

    def render_body(self, numbers: Mapping[str, int]) -> str:
        """The body as filed: each "#{key}" becomes "#<issue number>" (KeyError if unknown)."""
        return _PLACEHOLDER.sub(lambda m: f"#{numbers[m.group(1)]}", self.body)


def _text(content: str) -> str:
    return content.removeprefix("\n")


# --------------------------------------------------------------------------- initial commit

_README = _text(r"""
# userservice

A small users service: an in-memory user store behind a framework-free router.
Requests and responses are plain dataclasses, so the whole API is tested without sockets.

## API

### v1

- `GET /api/v1/users`: all users, oldest first, as a JSON list.
- `POST /api/v1/users` with `{"name": ..., "email": ...}`: creates a user (201); answers
  400 for a missing name or an invalid email and 409 when the email is already registered.

## Development

Standard library only, Python 3.11 or newer. Run the tests with:

    python -m unittest discover -s tests -t .
""")

_CHANGELOG = _text(r"""
# Changelog

All notable changes to this project are listed here, newest first.

## Unreleased

## 0.1.0

- v1 users API: list and create users.
- Session-token authentication.
""")

_APP_INIT = _text(r'''
"""userservice: a small users API."""

__version__ = "0.1.0"
''')

_AUTH = _text(r'''
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
''')

_USERS = _text(r'''
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
''')

_API = _text(r'''
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
''')

_TEST_AUTH = _text(r"""
import unittest

from app.auth import SessionStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SessionStoreTest(unittest.TestCase):
    def test_login_token_resolves_to_the_user(self) -> None:
        store = SessionStore()
        token = store.login(7)
        self.assertEqual(store.user_for(token), 7)

    def test_unknown_token_is_rejected(self) -> None:
        self.assertIsNone(SessionStore().user_for("nope"))

    def test_session_expires(self) -> None:
        clock = FakeClock()
        store = SessionStore(ttl_seconds=60, clock=clock)
        token = store.login(7)
        clock.now += 61
        self.assertIsNone(store.user_for(token))

    def test_logout_ends_the_session(self) -> None:
        store = SessionStore()
        token = store.login(7)
        store.logout(token)
        self.assertIsNone(store.user_for(token))
""")

_TEST_API = _text(r"""
import unittest

from app.api import Request, Response, Router, create_app


class RouterTest(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()
        self.router.add("get", "/ping", lambda request: Response(200, "pong"))

    def test_dispatches_on_method_and_path(self) -> None:
        self.assertEqual(self.router.dispatch(Request("GET", "/ping")), Response(200, "pong"))

    def test_unknown_route_is_404(self) -> None:
        self.assertEqual(self.router.dispatch(Request("POST", "/ping")).status, 404)
        self.assertEqual(self.router.dispatch(Request("GET", "/pong")).status, 404)

    def test_lists_its_routes(self) -> None:
        self.assertEqual(self.router.routes(), [("GET", "/ping")])


class UsersV1Test(unittest.TestCase):
    def setUp(self) -> None:
        self.app = create_app()

    def test_create_then_list(self) -> None:
        body = {"name": "Ada", "email": "ada@example.com"}
        created = self.app.dispatch(Request("POST", "/api/v1/users", body=body))
        self.assertEqual(created.status, 201)
        self.assertEqual(created.body, {"id": 1, "name": "Ada", "email": "ada@example.com"})
        listed = self.app.dispatch(Request("GET", "/api/v1/users"))
        self.assertEqual(listed.body, [created.body])

    def test_create_needs_a_name_and_an_email(self) -> None:
        bad = self.app.dispatch(Request("POST", "/api/v1/users", body={"name": "Ada"}))
        self.assertEqual(bad.status, 400)
""")

_TEST_INTEGRATION = _text(r'''
"""End-to-end flows through the router, the way a client uses the API."""

import unittest

from app.api import Request, Response, Router, create_app


def sign_up(app: Router, name: str, email: str) -> Response:
    return app.dispatch(Request("POST", "/api/v1/users", body={"name": name, "email": email}))


class SignupFlowTest(unittest.TestCase):
    def setUp(self) -> None:
        self.app = create_app()

    def test_signed_up_users_are_listed_oldest_first(self) -> None:
        self.assertEqual(sign_up(self.app, "Ada", "ada@example.com").status, 201)
        self.assertEqual(sign_up(self.app, "Grace", "grace@example.com").status, 201)
        listed = self.app.dispatch(Request("GET", "/api/v1/users"))
        self.assertEqual([user["name"] for user in listed.body], ["Ada", "Grace"])

    @unittest.expectedFailure
    def test_email_addresses_are_unique_ignoring_case(self) -> None:
        self.assertEqual(sign_up(self.app, "Ada", "ada@example.com").status, 201)
        again = sign_up(self.app, "Ada L.", "Ada@Example.COM")
        self.assertEqual(again.status, 409)
''')

SAMPLE_REPO: dict[str, str] = {
    ".gitignore": "__pycache__/\n*.pyc\n",
    "README.md": _README,
    "CHANGELOG.md": _CHANGELOG,
    "app/__init__.py": _APP_INIT,
    "app/auth.py": _AUTH,
    "app/users.py": _USERS,
    "app/api.py": _API,
    "tests/__init__.py": "",
    "tests/test_auth.py": _TEST_AUTH,
    "tests/test_api.py": _TEST_API,
    "tests/test_integration.py": _TEST_INTEGRATION,
}

# --------------------------------------------------------------------------- sprint: contents

_JWT_AUTH = _text(r'''
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
''')

_JWT_TESTS = _text(r"""
import unittest

from app.auth import InvalidToken, issue_token, secret_from_env, verify_token

SECRET = b"test-secret"


class TokenTest(unittest.TestCase):
    def test_round_trip(self) -> None:
        token = issue_token(7, SECRET, now=1000.0)
        self.assertEqual(verify_token(token, SECRET, now=1001.0), 7)

    def test_token_is_three_dot_separated_parts(self) -> None:
        self.assertEqual(len(issue_token(7, SECRET).split(".")), 3)

    def test_other_secret_is_rejected(self) -> None:
        token = issue_token(7, SECRET)
        with self.assertRaises(InvalidToken):
            verify_token(token, b"another-secret")

    def test_tampered_payload_is_rejected(self) -> None:
        header, _payload, signature = issue_token(7, SECRET).split(".")
        forged = issue_token(1, b"attacker").split(".")[1]
        with self.assertRaises(InvalidToken):
            verify_token(f"{header}.{forged}.{signature}", SECRET)

    def test_expired_token_is_rejected(self) -> None:
        token = issue_token(7, SECRET, ttl_seconds=60, now=1000.0)
        with self.assertRaises(InvalidToken):
            verify_token(token, SECRET, now=1060.0)

    def test_garbage_is_rejected(self) -> None:
        for garbage in ("", "a.b", "a.b.c", "not a token at all"):
            with self.subTest(garbage=garbage), self.assertRaises(InvalidToken):
                verify_token(garbage, SECRET)

    def test_secret_comes_from_the_environment(self) -> None:
        self.assertIsInstance(secret_from_env(), bytes)
""")

_RATELIMIT = _text(r'''
"""Token-bucket rate limiting, one bucket per client key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows bursts of `capacity` requests per key, refilled at `refill_per_second`."""

    def __init__(
        self,
        capacity: int,
        refill_per_second: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if refill_per_second < 0:
            raise ValueError("refill_per_second must not be negative")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str) -> bool:
        """Take one token from `key`'s bucket; False when it is empty."""
        now = self._clock()
        bucket = self._buckets.setdefault(key, _Bucket(tokens=float(self.capacity), updated=now))
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.capacity), bucket.tokens + elapsed * self.refill_per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True
''')

_RATELIMIT_TESTS = _text(r"""
import unittest

from app.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RateLimiterTest(unittest.TestCase):
    def test_allows_a_burst_up_to_capacity(self) -> None:
        limiter = RateLimiter(capacity=3, refill_per_second=1.0, clock=FakeClock())
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])

    def test_refills_over_time(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(capacity=1, refill_per_second=2.0, clock=clock)
        self.assertTrue(limiter.allow("a"))
        self.assertFalse(limiter.allow("a"))
        clock.now += 0.5
        self.assertTrue(limiter.allow("a"))

    def test_never_refills_beyond_capacity(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(capacity=2, refill_per_second=10.0, clock=clock)
        clock.now += 60
        self.assertEqual([limiter.allow("a") for _ in range(3)], [True, True, False])

    def test_keys_have_separate_buckets(self) -> None:
        limiter = RateLimiter(capacity=1, refill_per_second=0.0, clock=FakeClock())
        self.assertTrue(limiter.allow("a"))
        self.assertTrue(limiter.allow("b"))
        self.assertFalse(limiter.allow("a"))

    def test_rejects_nonsense_settings(self) -> None:
        with self.assertRaises(ValueError):
            RateLimiter(capacity=0, refill_per_second=1.0)
        with self.assertRaises(ValueError):
            RateLimiter(capacity=1, refill_per_second=-1.0)
""")

_THROTTLE_TESTS = _text(r"""
import unittest

from app.api import Request, Response, Router, create_app
from app.ratelimit import RateLimiter


def ping_router(capacity: int) -> Router:
    limiter = RateLimiter(capacity=capacity, refill_per_second=0.0, clock=lambda: 0.0)
    router = Router(limiter=limiter)
    router.add("GET", "/ping", lambda request: Response(200, "pong"))
    return router


class RouterRateLimitTest(unittest.TestCase):
    def test_requests_over_the_limit_get_429(self) -> None:
        router = ping_router(capacity=2)
        statuses = [router.dispatch(Request("GET", "/ping")).status for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 429])

    def test_each_client_has_its_own_budget(self) -> None:
        router = ping_router(capacity=1)
        self.assertEqual(router.dispatch(Request("GET", "/ping", client="10.0.0.1")).status, 200)
        self.assertEqual(router.dispatch(Request("GET", "/ping", client="10.0.0.2")).status, 200)
        self.assertEqual(router.dispatch(Request("GET", "/ping", client="10.0.0.1")).status, 429)

    def test_router_without_a_limiter_never_throttles(self) -> None:
        router = Router()
        router.add("GET", "/ping", lambda request: Response(200, "pong"))
        statuses = {router.dispatch(Request("GET", "/ping")).status for _ in range(300)}
        self.assertEqual(statuses, {200})

    def test_the_app_is_rate_limited(self) -> None:
        app = create_app()
        statuses = {app.dispatch(Request("GET", "/api/v1/users")).status for _ in range(300)}
        self.assertEqual(statuses, {200, 429})
""")

_API_V2 = _text(r'''
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
''')

_V2_SMOKE_TEST = _text(r"""


class UsersV2SmokeTest(unittest.TestCase):
    def test_v2_users_needs_a_bearer_token(self) -> None:
        from app.auth import issue_token, secret_from_env

        app = create_app()
        self.assertEqual(app.dispatch(Request("GET", "/api/v2/users")).status, 401)
        headers = {"Authorization": f"Bearer {issue_token(1, secret_from_env())}"}
        listed = app.dispatch(Request("GET", "/api/v2/users", headers=headers))
        self.assertEqual(listed, Response(200, {"users": [], "count": 0}))
""")

_USERS_V2_TESTS = _text(r'''
"""The /api/v2/users endpoint: auth, validation, the envelope and duplicate emails."""

import unittest

from app.api import Request, Response, create_app
from app.auth import issue_token, secret_from_env
from app.users import UserStore


class UsersV2Test(unittest.TestCase):
    def setUp(self) -> None:
        self.store = UserStore()
        self.app = create_app(self.store)
        self.auth = {"Authorization": f"Bearer {issue_token(42, secret_from_env())}"}

    def call(self, method: str, body: dict[str, str] | None = None, **headers: str) -> Response:
        request = Request(method, "/api/v2/users", headers=headers or self.auth, body=body or {})
        return self.app.dispatch(request)

    def test_lists_users_in_an_envelope(self) -> None:
        self.store.add("Ada", "ada@example.com")
        listed = self.call("GET")
        self.assertEqual(listed.status, 200)
        self.assertEqual(listed.body["count"], 1)
        self.assertEqual(listed.body["users"][0]["email"], "ada@example.com")

    def test_creates_a_user(self) -> None:
        created = self.call("POST", {"name": "Grace", "email": "grace@example.com"})
        self.assertEqual(created.status, 201)
        self.assertEqual(created.body["user"]["name"], "Grace")
        self.assertEqual(self.call("GET").body["count"], 1)

    def test_rejects_missing_or_bad_tokens(self) -> None:
        valid = issue_token(42, secret_from_env())
        wrong_key = issue_token(42, b"someone-else")
        expired = issue_token(42, secret_from_env(), ttl_seconds=-1)
        headers = ["", "Bearer", f"Token {valid}", f"Bearer {wrong_key}", f"Bearer {expired}"]
        for header in headers:
            with self.subTest(header=header):
                self.assertEqual(self.call("GET", Authorization=header).status, 401)

    def test_validates_the_body(self) -> None:
        self.assertEqual(self.call("POST", {"name": "Ada"}).status, 400)
        self.assertEqual(self.call("POST", {"name": " ", "email": "a@example.com"}).status, 400)

    def test_duplicate_email_is_409_ignoring_case(self) -> None:
        self.assertEqual(self.call("POST", {"name": "Ada", "email": "ada@example.com"}).status, 201)
        again = self.call("POST", {"name": "Ada", "email": "ADA@example.com"})
        self.assertEqual(again.status, 409)

    def test_v1_and_v2_share_the_store(self) -> None:
        self.call("POST", {"name": "Ada", "email": "ada@example.com"})
        v1 = self.app.dispatch(Request("GET", "/api/v1/users"))
        self.assertEqual([user["name"] for user in v1.body], ["Ada"])
''')

_LOGGING_DISPATCH = _text(r"""
    def dispatch(self, request: Request) -> Response:
        started = time.perf_counter()
        response = self._dispatch(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info(
            "%s %s -> %d in %.1f ms (client %s)",
            request.method,
            request.path,
            response.status,
            elapsed_ms,
            request.client,
        )
        return response

    def _dispatch(self, request: Request) -> Response:
        if self._limiter is not None""")

_LOGGING_TESTS = _text(r"""
import unittest

from app.api import Request, Response, Router, create_app
from app.ratelimit import RateLimiter


class RequestLoggingTest(unittest.TestCase):
    def test_each_request_is_logged_with_its_status(self) -> None:
        app = create_app()
        with self.assertLogs("app.requests", level="INFO") as logs:
            app.dispatch(Request("GET", "/api/v1/users", client="10.1.2.3"))
            app.dispatch(Request("DELETE", "/nowhere"))
        self.assertEqual(len(logs.records), 2)
        self.assertIn("GET /api/v1/users -> 200", logs.output[0])
        self.assertIn("client 10.1.2.3", logs.output[0])
        self.assertIn("DELETE /nowhere -> 404", logs.output[1])

    def test_throttled_requests_are_logged_too(self) -> None:
        limiter = RateLimiter(capacity=1, refill_per_second=0.0, clock=lambda: 0.0)
        router = Router(limiter=limiter)
        router.add("GET", "/ping", lambda request: Response(200, "pong"))
        with self.assertLogs("app.requests", level="INFO") as logs:
            router.dispatch(Request("GET", "/ping"))
            router.dispatch(Request("GET", "/ping"))
        self.assertIn("GET /ping -> 429", logs.output[1])
""")

_README_V2 = _text(r"""
### v2

v2 requires a bearer token: send `Authorization: Bearer <token>`, where the token comes from
`app.auth.issue_token(user_id, secret)` and the secret is `APP_TOKEN_SECRET`. Requests without
a valid, unexpired token get 401.

- `GET /api/v2/users`: `{"users": [...], "count": n}`, oldest first.
- `POST /api/v2/users` with `{"name": ..., "email": ...}`: creates a user and answers
  `{"user": {...}}` (201); 400 and 409 as in v1. Emails are unique ignoring case.

Every client gets a budget of 120 requests, refilled at 2 per second; beyond it the API
answers 429. Each request is logged on the `app.requests` logger.

""")

_DOCS_TESTS = _text(r'''
"""The README documents every route the service serves."""

import unittest
from pathlib import Path

from app.api import create_app

README = Path(__file__).resolve().parent.parent / "README.md"


class ReadmeTest(unittest.TestCase):
    def test_every_route_is_documented(self) -> None:
        readme = README.read_text(encoding="utf-8")
        for method, path in create_app().routes():
            with self.subTest(route=f"{method} {path}"):
                self.assertIn(f"`{method} {path}", readme)
''')

_CHANGELOG_020 = _text(r"""
## Unreleased

## 0.2.0

- New `/api/v2/users` endpoint with bearer-token auth and a counted envelope.
- Authentication uses stateless HMAC-signed (JWT-style) tokens instead of server-side sessions.
- Per-client rate limiting (429 when over budget) and request logging on `app.requests`.
- Fixed: email addresses are unique regardless of case.
""")

_RELEASE_TESTS = _text(r"""
import re
import unittest
from pathlib import Path

import app

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"


class ReleaseTest(unittest.TestCase):
    def test_newest_changelog_entry_is_the_package_version(self) -> None:
        text = CHANGELOG.read_text(encoding="utf-8")
        released = re.findall(r"^## (\d+\.\d+\.\d+)", text, flags=re.MULTILINE)
        self.assertEqual(released[0], app.__version__)
""")


# --------------------------------------------------------------------------- sprint: issues


def _issue(
    key: str,
    title: str,
    prose: str,
    *,
    sleep: float,
    edits: list[dict[str, Any]],
    summary: str,
    text: tuple[str, ...] = (),
    native: tuple[str, ...] = (),
    review: str | None = None,
) -> SprintIssue:
    script = {"sleep": sleep, "edits": edits, "summary": summary}
    body = f"{textwrap.dedent(prose).strip()}\n\n{script_block(script)}\n"
    return SprintIssue(
        key=key,
        title=title,
        body=body,
        blocked_by_text=text,
        blocked_by_native=native,
        sleep=sleep,
        review=review,
    )


def _write(path: str, content: str) -> dict[str, Any]:
    return {"path": path, "write": content}


def _replace(path: str, old: str, new: str) -> dict[str, Any]:
    return {"path": path, "replace": [old, new]}


def _append(path: str, content: str) -> dict[str, Any]:
    return {"path": path, "append": content}


_LIMITER_INIT_OLD = "    def __init__(self) -> None:\n"
_LIMITER_INIT_NEW = "    def __init__(self, limiter: RateLimiter | None = None) -> None:\n"
_ROUTES_FIELD = "        self._routes: dict[tuple[str, str], Handler] = {}\n"
_DISPATCH_OLD = (
    "    def dispatch(self, request: Request) -> Response:\n        handler = self._routes.get("
)
_DISPATCH_THROTTLED = (
    "    def dispatch(self, request: Request) -> Response:\n"
    "        if self._limiter is not None and not self._limiter.allow(request.client):\n"
    '            return Response(429, {"error": "rate limit exceeded, slow down"})\n'
    "        handler = self._routes.get("
)
_V2_REGISTRATION = (
    "    # Imported here, not at the top: app.api_v2 builds on Request and Response from here.\n"
    "    from app.api_v2 import register_v2\n"
    "\n"
    "    register_v2(router, users)\n"
    "    return router\n"
)

_RETRY_AFTER_OLD = "        bucket.tokens -= 1.0\n        return True\n"
_RETRY_AFTER_NEW = _RETRY_AFTER_OLD + _text(r'''

    def retry_after(self, key: str) -> float:
        """Seconds until `key` has a token again; 0.0 when it has one now."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        elapsed = max(0.0, self._clock() - bucket.updated)
        tokens = min(float(self.capacity), bucket.tokens + elapsed * self.refill_per_second)
        if tokens >= 1.0:
            return 0.0
        if self.refill_per_second == 0:
            return float("inf")
        return (1.0 - tokens) / self.refill_per_second
''')
_RETRY_AFTER_TEST = _text(r"""

    def test_retry_after_says_when_a_token_is_back(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(capacity=1, refill_per_second=2.0, clock=clock)
        self.assertEqual(limiter.retry_after("a"), 0.0)
        self.assertTrue(limiter.allow("a"))
        self.assertAlmostEqual(limiter.retry_after("a"), 0.5)
        clock.now += 0.5
        self.assertEqual(limiter.retry_after("a"), 0.0)
""")
_RATELIMIT_REVIEW = (
    "Looks good. One thing before it merges: the router will want to send `Retry-After`, so "
    "please add `retry_after(key) -> float` (seconds until the key has a token again, `0.0` "
    "when it has one) with a test.\n\n"
    + script_block(
        {
            "sleep": 1.0,
            "edits": [
                _replace("app/ratelimit.py", _RETRY_AFTER_OLD, _RETRY_AFTER_NEW),
                _append("tests/test_ratelimit.py", _RETRY_AFTER_TEST),
            ],
            "summary": "Added RateLimiter.retry_after(key) with a test, as the review asked.",
        }
    )
)

SPRINT: tuple[SprintIssue, ...] = (
    _issue(
        "jwt",
        "Refactor auth module to use JWT",
        """
        Sessions live in a dict inside one process (`app/auth.py`), so every restart logs
        everybody out and we cannot run two replicas. Move to stateless bearer tokens.

        We do not want a new dependency for this: sign JWT-shaped tokens
        (`header.payload.signature`) with HMAC-SHA256 from the standard library
        (`hmac`, `hashlib`, `base64`, `json`).

        Acceptance criteria:
        - `issue_token(user_id, secret, ttl_seconds=..., now=None)` and
          `verify_token(token, secret, now=None) -> user_id`, raising `InvalidToken` for
          malformed, tampered, wrongly signed or expired tokens.
        - `secret_from_env()` reads `APP_TOKEN_SECRET`.
        - `SessionStore` is removed; `tests/test_auth.py` covers the new functions.
        """,
        sleep=5.0,
        edits=[_write("app/auth.py", _JWT_AUTH), _write("tests/test_auth.py", _JWT_TESTS)],
        summary="Replaced server-side sessions with HMAC-SHA256 signed JWT-style tokens "
        "(issue_token / verify_token) and rewrote the auth tests.",
    ),
    _issue(
        "fix-tests",
        "Fix failing integration tests",
        """
        `tests/test_integration.py::test_email_addresses_are_unique_ignoring_case` is marked
        `@unittest.expectedFailure` because signing up twice with `ada@example.com` and
        `Ada@Example.COM` creates two accounts.

        `UserStore.add` stores emails lower-cased, but `find_by_email` compares the raw query,
        so the duplicate check never matches a differently-cased address.

        Acceptance criteria:
        - `find_by_email` normalises its argument the same way `add` does.
        - The `expectedFailure` marker is gone and the whole suite passes.
        """,
        sleep=3.0,
        edits=[
            _replace(
                "app/users.py",
                "            if user.email == email:\n",
                "            if user.email == email.strip().lower():\n",
            ),
            _replace(
                "tests/test_integration.py",
                "    @unittest.expectedFailure\n    def test_email_addresses_are_unique",
                "    def test_email_addresses_are_unique",
            ),
        ],
        summary="find_by_email now normalises the address like add does; removed the "
        "expectedFailure marker from the integration test.",
    ),
    _issue(
        "ratelimit",
        "Add a token-bucket rate limiter",
        """
        Before v2 goes public we need per-client rate limiting. This issue is only the limiter
        itself, as a standalone module; wiring it into the router is a separate issue.

        Acceptance criteria:
        - `app/ratelimit.py` with `RateLimiter(capacity, refill_per_second, clock=time.monotonic)`
          and `allow(key) -> bool`: one token bucket per key, bursts up to `capacity`.
        - Unit tests with a fake clock (no sleeping in tests).
        """,
        sleep=4.0,
        edits=[
            _write("app/ratelimit.py", _RATELIMIT),
            _write("tests/test_ratelimit.py", _RATELIMIT_TESTS),
        ],
        summary="Added app/ratelimit.py (token bucket per key, injectable clock) with tests.",
        review=_RATELIMIT_REVIEW,
    ),
    _issue(
        "v2-users",
        "Add /api/v2/users endpoint",
        """
        Mobile clients need a users endpoint that does not rely on server-side sessions.
        Add `/api/v2/users` (GET and POST) that authenticates with the new bearer tokens and
        wraps results in an envelope. v1 stays unchanged.

        This needs the JWT-based auth module (linked as a dependency of this issue).
        Blocked by #{fix-tests}: v2 must not ship with the case-sensitive duplicate-email bug.

        Acceptance criteria:
        - `GET /api/v2/users` -> `{"users": [...], "count": n}`;
          `POST /api/v2/users` -> 201 `{"user": {...}}`, 400 on bad input, 409 on duplicates.
        - Both answer 401 without a valid `Authorization: Bearer <token>`.
        - Routes are registered from a new `app/api_v2.py`; a smoke test in `tests/test_api.py`.
        """,
        sleep=4.5,
        edits=[
            _write("app/api_v2.py", _API_V2),
            _replace("app/api.py", "    return router\n", _V2_REGISTRATION),
            _append("tests/test_api.py", _V2_SMOKE_TEST),
        ],
        summary="Added app/api_v2.py with GET/POST /api/v2/users behind bearer-token auth, "
        "registered it in create_app, and added a smoke test.",
        text=("fix-tests",),
        native=("jwt",),
    ),
    _issue(
        "throttle",
        "Enforce rate limits in the router",
        """
        Use the rate limiter in the router: every request is charged to its client, and a
        client over budget gets `429` before any handler runs.

        Blocked by #{ratelimit}.

        Acceptance criteria:
        - `Router(limiter=None)`: without a limiter nothing changes (handy in tests).
        - `create_app()` uses 120 requests per client, refilled at 2 per second.
        - Tests for 429, per-client budgets and the app's default limiter.
        """,
        sleep=3.0,
        edits=[
            _replace(
                "app/api.py",
                "from app.users import DuplicateEmail, UserStore\n",
                "from app.ratelimit import RateLimiter\n"
                "from app.users import DuplicateEmail, UserStore\n",
            ),
            _replace(
                "app/api.py",
                _LIMITER_INIT_OLD + _ROUTES_FIELD,
                _LIMITER_INIT_NEW + _ROUTES_FIELD + "        self._limiter = limiter\n",
            ),
            _replace("app/api.py", _DISPATCH_OLD, _DISPATCH_THROTTLED),
            _replace(
                "app/api.py",
                "    router = Router()\n",
                "    router = Router(limiter=RateLimiter(capacity=120, refill_per_second=2.0))\n",
            ),
            _write("tests/test_throttle.py", _THROTTLE_TESTS),
        ],
        summary="Router takes an optional RateLimiter and answers 429 when a client is over "
        "budget; create_app enables 120 requests per client.",
        text=("ratelimit",),
    ),
    _issue(
        "users-tests",
        "Write tests for users endpoint",
        """
        The v2 users endpoint (linked as a dependency) only has a smoke test. Cover it properly
        in `tests/test_users_v2.py`:

        - listing returns the envelope and the count;
        - creating a user, and that v1 and v2 share one store;
        - 401 for a missing header, a wrong scheme, a token signed with another secret and an
          expired token;
        - 400 for a missing name or email, 409 for a duplicate email in another case.
        """,
        sleep=3.0,
        edits=[_write("tests/test_users_v2.py", _USERS_V2_TESTS)],
        summary="Added tests/test_users_v2.py covering auth failures, validation, the envelope, "
        "duplicates and v1/v2 sharing one store.",
        native=("v2-users",),
    ),
    _issue(
        "logging",
        "Add request logging",
        """
        We cannot tell from the logs who is hitting the API, or how often clients are
        throttled. Log one line per request on the `app.requests` logger (INFO): method, path,
        status, duration and client, including requests rejected with 429.

        Blocked by #{throttle}: the log line must show throttled requests too.
        """,
        sleep=3.0,
        edits=[
            _replace(
                "app/api.py",
                "from __future__ import annotations\n\nfrom collections.abc import Callable\n",
                "from __future__ import annotations\n\n"
                "import logging\nimport time\nfrom collections.abc import Callable\n",
            ),
            _replace(
                "app/api.py",
                "Handler = Callable[[Request], Response]\n",
                "Handler = Callable[[Request], Response]\n"
                "\n"
                'log = logging.getLogger("app.requests")\n',
            ),
            _replace(
                "app/api.py",
                "    def dispatch(self, request: Request) -> Response:\n"
                "        if self._limiter is not None",
                _LOGGING_DISPATCH,
            ),
            _write("tests/test_logging.py", _LOGGING_TESTS),
        ],
        summary="Router.dispatch logs method, path, status, duration and client on app.requests, "
        "throttled requests included.",
        text=("throttle",),
    ),
    _issue(
        "v2-docs",
        "Document the v2 users API in the README",
        """
        The README only describes v1. Document `/api/v2/users` (linked as a dependency): the
        bearer token, the envelope, the error codes and the rate limit.

        Add a test that fails when a served route is missing from the README, so the docs
        cannot fall behind again.
        """,
        sleep=2.0,
        edits=[
            _replace("README.md", "## Development\n", _README_V2 + "## Development\n"),
            _write("tests/test_docs.py", _DOCS_TESTS),
        ],
        summary="Documented the v2 users API in the README and added a test that every route "
        "is documented.",
        native=("v2-users",),
    ),
    _issue(
        "changelog",
        "Changelog for the 0.2.0 release",
        """
        Cut 0.2.0 once the sprint has landed: move the changes into a `## 0.2.0` section of
        `CHANGELOG.md` and bump `app.__version__`, with a test that keeps the two in step.

        Blocked by #{logging}
        Blocked by #{v2-docs}
        (The endpoint tests are linked as a dependency too.)
        """,
        sleep=2.0,
        edits=[
            _replace("CHANGELOG.md", "## Unreleased\n", _CHANGELOG_020),
            _replace("app/__init__.py", '__version__ = "0.1.0"', '__version__ = "0.2.0"'),
            _write("tests/test_release.py", _RELEASE_TESTS),
        ],
        summary="Released 0.2.0: changelog section and version bump, with a test tying them.",
        text=("logging", "v2-docs"),
        native=("users-tests",),
    ),
)
