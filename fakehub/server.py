"""The :class:`FakeHub` facade: model, REST API, git over HTTP, webhooks and CI in one server.

``FakeHub(root).start()`` serves on ``127.0.0.1`` (a free port by default) from a daemon thread:
the REST API under ``/api/v3``, git smart HTTP at ``/{owner}/{repo}.git`` and a small admin API
under ``/_fakehub/`` that mirrors the facade's methods for other processes.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from fakehub.auth import git_authorize
from fakehub.ci import CIRunner
from fakehub.delivery import Faults, WebhookSender
from fakehub.githttp import create_git_app
from fakehub.gitstore import GitStore, Identity
from fakehub.hub import Hub
from fakehub.records import App, Protection, Repo, User
from fakehub.rest.endpoint import ApiFaults
from fakehub.rest.routes import routes
from fakehub.state import State


class FakeHub:
    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        ci_workers: int = 2,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or _free_port(host)
        self.state = State()
        self.git = GitStore(self.root / "repos")
        self.sender = WebhookSender(faults)
        self.ci = CIRunner(self.git, self.root / "ci", max_workers=ci_workers)
        self.faults = ApiFaults()
        self.hub = Hub(self.state, self.git, self.sender, self.ci, self.url)
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> GitStore:
        return self.git

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/v3"

    # -- lifecycle -------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        git_app = create_git_app(
            self.git,
            lambda full, user, pw, write: (
                pw is not None and git_authorize(self.state, full, user or "", pw, write)
            ),
            self.hub.on_git_push,
        )
        self._git_app = git_app
        admin = [
            Route("/_fakehub/users", self._admin_users, methods=["POST"]),
            Route("/_fakehub/apps", self._admin_apps, methods=["POST"]),
            Route("/_fakehub/repos", self._admin_repos, methods=["POST"]),
            Route("/_fakehub/installations", self._admin_installations, methods=["POST"]),
            Route("/_fakehub/permissions", self._admin_permissions, methods=["POST"]),
            Route("/_fakehub/events", self._admin_events, methods=["GET"]),
            Route("/_fakehub/faults", self._admin_faults, methods=["PUT"]),
            Route("/_fakehub/limits", self._admin_limits, methods=["GET"]),
        ]
        return Starlette(
            routes=[
                *routes(self.hub, self.faults),
                *admin,
                Route(
                    "/api/v3/{rest:path}",
                    _not_found,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
                Mount("/", app=git_app),
            ],
        )

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fakehub", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"fakehub failed to start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._git_app.state.git_http.notifier.shutdown(wait=True)
        self.hub.queue.shutdown()
        self.ci.shutdown()
        self.sender.close()

    def __enter__(self) -> FakeHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- set-up ----------------------------------------------------------------------------
    def create_user(self, login: str, *, type: str = "User") -> User:
        return self.state.add_user(login, type)

    def create_app(
        self,
        *,
        slug: str,
        webhook_url: str | None,
        webhook_secret: str,
        events: list[str],
        permissions: dict[str, str],
        owner: str | None = None,
    ) -> App:
        owner_user = self.state.user(owner) if owner else None
        if owner_user is None:
            owner_user = self.state.user("fakehub") or self.state.add_user(
                "fakehub", "Organization"
            )
        return self.state.add_app(
            slug=slug,
            owner=owner_user,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            events=events,
            permissions=permissions,
        )

    def create_repo(
        self,
        owner: str,
        name: str,
        files: dict[str, str],
        *,
        ci_command: list[str] | None = None,
        required_checks: list[str] | tuple[str, ...] = (),
        strict: bool = True,
        private: bool = False,
        default_branch: str = "main",
    ) -> Repo:
        owner_user = self.state.user(owner)
        if owner_user is None:
            raise KeyError(f"no user {owner!r}")
        self.git.create_repo(
            f"{owner_user.login}/{name}",
            files,
            default_branch=default_branch,
            author=Identity(owner_user.login, owner_user.email),
        )
        repo = self.state.add_repo(
            owner_user,
            name,
            default_branch=default_branch,
            private=private,
            ci_command=list(ci_command) if ci_command else None,
        )
        if required_checks:
            repo.protection[default_branch] = Protection(list(required_checks), strict)
        return repo

    def protect(
        self,
        full_name: str,
        branch: str,
        contexts: list[str],
        strict: bool = True,
        *,
        code_owner_reviews: bool = False,
    ) -> None:
        repo = self._repo(full_name)
        repo.protection[branch] = Protection(list(contexts), strict, code_owner_reviews)

    def install_app(self, app_id: int, account: str, repos: list[str]) -> int:
        app = self.state.apps[app_id]
        account_user = self.state.user(account)
        if account_user is None:
            raise KeyError(f"no user {account!r}")
        found = [self._repo(f"{account_user.login}/{name}") for name in repos]
        inst = self.state.install(app, account_user, found)
        sender = account_user if account_user.type != "Organization" else app.owner
        self.hub.emit_installation(inst.id, sender)
        return inst.id

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        repo = self._repo(full_name)
        if self.state.user(login) is None:
            raise KeyError(f"no user {login!r}")
        repo.collaborators[login.lower()] = permission

    def set_webhook_url(self, app_id: int, url: str) -> None:
        self.state.apps[app_id].webhook_url = url

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        return self.state.events(type)

    def _repo(self, full_name: str) -> Repo:
        repo = self.state.repo(full_name)
        if repo is None:
            raise KeyError(f"no repository {full_name!r}")
        return repo

    # -- admin HTTP ------------------------------------------------------------------------
    async def _admin_users(self, request: Request) -> JSONResponse:
        body = await request.json()
        user = self.create_user(body["login"], type=body.get("type", "User"))
        return JSONResponse({"login": user.login, "id": user.id, "token": user.token}, 201)

    async def _admin_apps(self, request: Request) -> JSONResponse:
        body = await request.json()
        app = self.create_app(
            slug=body["slug"],
            webhook_url=body.get("webhook_url"),
            webhook_secret=body.get("webhook_secret", ""),
            events=body.get("events", []),
            permissions=body.get("permissions", {}),
            owner=body.get("owner"),
        )
        return JSONResponse(
            {
                "id": app.id,
                "slug": app.slug,
                "client_id": app.client_id,
                "private_key_pem": app.private_key_pem,
                "webhook_secret": app.webhook_secret,
            },
            201,
        )

    async def _admin_repos(self, request: Request) -> JSONResponse:
        body = await request.json()
        repo = self.create_repo(
            body["owner"],
            body["name"],
            body.get("files", {"README.md": "# repo\n"}),
            ci_command=body.get("ci_command"),
            required_checks=body.get("required_checks", []),
            strict=body.get("strict", True),
            private=body.get("private", False),
        )
        return JSONResponse(
            {
                "id": repo.id,
                "full_name": repo.full_name,
                "clone_url": f"{self.url}/{repo.full_name}.git",
            },
            201,
        )

    async def _admin_installations(self, request: Request) -> JSONResponse:
        body = await request.json()
        inst_id = self.install_app(int(body["app_id"]), body["account"], body["repos"])
        return JSONResponse({"id": inst_id}, 201)

    async def _admin_permissions(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.set_permission(body["repo"], body["login"], body["permission"])
        return JSONResponse({}, 201)

    async def _admin_events(self, request: Request) -> JSONResponse:
        return JSONResponse(self.events(request.query_params.get("type")))

    async def _admin_faults(self, request: Request) -> JSONResponse:
        body = await request.json()
        api = body.get("api", {})
        hooks = body.get("webhooks", {})
        self.faults.update(**api)
        for key, value in hooks.items():
            setattr(self.sender.faults, key, value)
        return JSONResponse(
            {
                "api": {k: v for k, v in vars(self.faults).items() if not k.startswith("_")},
                "webhooks": dict(vars(self.sender.faults)),
            }
        )

    async def _admin_limits(self, request: Request) -> JSONResponse:
        """Content-creating requests the content limits accepted and rejected."""
        return JSONResponse(self.faults.content_counts())


async def _not_found(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest",
            "status": "404",
        },
        404,
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(host: str = "127.0.0.1", port: int = 8765, root: Path | None = None) -> None:
    """Run fakehub in the foreground until interrupted (``stoneforge fakehub``)."""
    import tempfile

    root = root or Path(tempfile.mkdtemp(prefix="fakehub-"))
    hub = FakeHub(root, host=host, port=port)
    hub.start()
    print(f"fakehub REST API: {hub.api_url}")
    print(f"fakehub git:      {hub.url}/<owner>/<repo>.git")
    print(f"fakehub admin:    {hub.url}/_fakehub/")
    print(f"data in {root}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
