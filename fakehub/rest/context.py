"""What a REST handler gets and returns: :class:`Ctx` (the hub, the authenticated actor, the
path parameters, the query and the JSON body) and ``(status, body)`` or
``(status, body, headers)``, plus GitHub's pagination. The route modules of ``fakehub.rest``
import this; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakehub.auth import Actor, ApiError, not_found, require_repo
from fakehub.hub import Hub
from fakehub.records import Repo
from fakehub.state import State

Result = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Handler = Callable[["Ctx"], Result]


@dataclass
class Ctx:
    hub: Hub
    actor: Actor
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    request_path: str

    @property
    def state(self) -> State:
        return self.hub.state

    def repo(self, permission: str = "metadata", level: str = "read") -> Repo:
        repo = self.state.repo(self.params["owner"], self.params["repo"])
        if repo is None:
            raise not_found()
        require_repo(self.state, self.actor, repo, permission, level)
        return repo

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise not_found() from None

    def field(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        if name not in body or body[name] is None:
            if required:
                raise ApiError(422, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
            return None
        value = body[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ApiError(
                422,
                f'Invalid request.\n\nInvalid type for "{name}".',
                documentation_url="https://docs.github.com/rest",
            )
        return value


def paginate(ctx: Ctx, items: list[Any], default: int = 30) -> tuple[list[Any], dict[str, str]]:
    """Page ``items`` with ``per_page``/``page`` and build GitHub's ``Link`` header."""
    try:
        per_page = max(1, min(100, int(ctx.query.get("per_page", default))))
        page = max(1, int(ctx.query.get("page", 1)))
    except ValueError:
        raise ApiError(422, "Invalid request.\n\nInvalid per_page or page.") from None
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    base = f"{ctx.hub.payloads.api}{ctx.request_path}"
    keep = {k: v for k, v in ctx.query.items() if k not in ("page", "per_page")}

    def link(n: int, rel: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {**keep, "per_page": per_page, "page": n}.items())
        return f'<{base}?{query}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return chunk, ({"Link": ", ".join(links)} if links else {})
