"""Git smart HTTP for fakehub: ``git http-backend`` run as a CGI program behind an ASGI app.

Serves ``/{owner}/{repo}.git/info/refs?service=...``, ``.../git-upload-pack`` and
``.../git-receive-pack`` with HTTP Basic auth checked by an ``authorize`` callback. A push is
serialised with the repository's lock; the branches are compared before and after, and the
changes go to ``on_push`` on a worker thread once the response is ready.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import logging
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fakehub.gitstore import ZERO_SHA, GitStore, git_env

log = logging.getLogger(__name__)

Authorize = Callable[[str, str | None, str | None, bool], bool]
OnPush = Callable[[str, list[tuple[str, str, str]], str | None], None]

_SERVICES = {"git-upload-pack": False, "git-receive-pack": True}
_MAX_BODY = 512 * 1024 * 1024


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(username, password) from an ``Authorization: Basic`` header, or (None, None)."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (user, None)


def _parse_cgi(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    head, sep, body = output.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = output.partition(b"\n\n")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return status, headers, body


def _ref_updates(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str, str]]:
    return [
        (f"refs/heads/{name}", before.get(name, ZERO_SHA), after.get(name, ZERO_SHA))
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


class _GitHttp:
    def __init__(self, store: GitStore, authorize: Authorize, on_push: OnPush) -> None:
        self.store = store
        self.authorize = authorize
        self.on_push = on_push
        # One thread keeps push notifications in push order and off the request path.
        self.notifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fakehub-on-push")

    async def handle(self, request: Request) -> Response:
        owner, repo, rest = (request.path_params[k] for k in ("owner", "repo", "rest"))
        full_name = f"{owner}/{repo}"
        if rest == "info/refs":
            service = request.query_params.get("service", "")
        else:
            service = rest if request.method == "POST" else ""
        if service not in _SERVICES or not self.store.exists(full_name):
            return PlainTextResponse("Repository not found.\n", status_code=404)
        write = _SERVICES[service]
        user, password = basic_credentials(request.headers.get("authorization"))
        denied = await asyncio.to_thread(self._check, full_name, user, password, write)
        if denied is not None:
            return denied
        body = await request.body()
        if request.headers.get("content-encoding", "").lower() in {"gzip", "x-gzip"}:
            body = gzip.decompress(body)
        if len(body) > _MAX_BODY:
            return PlainTextResponse("Request too large.\n", status_code=413)
        env = {
            "GIT_PROJECT_ROOT": str(self.store.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner}/{repo}.git/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.url.query,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user or "",
            "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": str(_MAX_BODY),
            # Authorisation is ours; let http-backend serve receive-pack to anyone we let in.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
        }
        if protocol := request.headers.get("git-protocol"):
            env["GIT_PROTOCOL"] = protocol
        if rest == "git-receive-pack":
            result = await asyncio.to_thread(self._receive_pack, full_name, env, body, password)
        else:
            result = await asyncio.to_thread(self._backend, env, body)
        status, headers, content = result
        return Response(content, status_code=status, headers=dict(headers))

    def _check(
        self, full_name: str, user: str | None, password: str | None, write: bool
    ) -> Response | None:
        if self.authorize(full_name, user, password, write):
            return None
        if user is not None and write and self.authorize(full_name, user, password, False):
            return PlainTextResponse("Permission denied.\n", status_code=403)
        return PlainTextResponse(
            "Authentication required.\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="fakehub"'},
        )

    def _backend(
        self, env: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        proc = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=git_env(env),
            cwd=self.store.root,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0 and not proc.stdout:
            log.warning("git http-backend failed: %s", proc.stderr.decode(errors="replace"))
            return 500, [], b"git http-backend failed\n"
        return _parse_cgi(proc.stdout)

    def _receive_pack(
        self, full_name: str, env: dict[str, str], body: bytes, password: str | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        with self.store.lock(full_name):
            before = self.store.branches(full_name)
            result = self._backend(env, body)
            after = self.store.branches(full_name)
        updates = _ref_updates(before, after)
        if updates:
            self.notifier.submit(self._notify, full_name, updates, password)
        return result

    def _notify(self, full_name: str, updates: list[tuple[str, str, str]], pw: str | None) -> None:
        try:
            self.on_push(full_name, updates, pw)
        except Exception:
            log.exception("on_push failed for %s", full_name)


def create_git_app(store: GitStore, authorize: Authorize, on_push: OnPush) -> Starlette:
    """An ASGI app serving git smart HTTP for every repository in ``store``.

    Mount it at ``/`` after the REST routes; ``app.state.git_http.notifier`` is the executor
    that runs ``on_push`` (shut it down when the server stops).
    """
    git_http = _GitHttp(store, authorize, on_push)
    app = Starlette(
        routes=[
            Route(
                "/{owner}/{repo}.git/{rest:path}",
                git_http.handle,
                methods=["GET", "POST"],
            )
        ]
    )
    app.state.git_http = git_http
    return app
