"""Calls made as the App itself (JWT): installations, repository tokens, webhook deliveries."""

from __future__ import annotations

import re
from typing import Any

from githubkit import GitHub, TokenAuthStrategy

from bot.adapters.github.client import AdapterBase, GitHubError
from bot.adapters.github.records import iso_epoch


def _next_cursor(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            match = re.search(r"[?&]cursor=([^&>]+)", part)
            if match:
                return match.group(1)
    return None


class AppCalls(AdapterBase):
    """The App's own endpoints, authenticated with its JWT (or a token it handed out)."""

    async def app_slug(self) -> str:
        resp = await self._call(self._app.rest.apps.async_get_authenticated())
        return str(resp.json()["slug"])

    async def installations(self) -> list[int]:
        resp = await self._call(self._app.rest.apps.async_list_installations(per_page=100))
        return [int(item["id"]) for item in resp.json()]

    async def repo_token(self, installation_id: int, repo: str, *, write: bool = True) -> str:
        """A fresh installation token for one repository, to push a task's branch.

        Scoped to that repository with contents and pull requests write (the issue's contract
        for a job token); metadata read comes with any installation token. ``write=False``:
        contents read only (a runner fetching ahead of its next job).
        """
        name = repo.split("/", 1)[1]
        create = self._app.rest.apps.async_create_installation_access_token
        if write:
            call = create(
                installation_id,
                repositories=[name],
                permissions={"contents": "write", "pull_requests": "write"},
            )
        else:
            call = create(installation_id, repositories=[name], permissions={"contents": "read"})
        resp = await self._call(call)
        return str(resp.json()["token"])

    async def revoke_token(self, token: str) -> None:
        """Revoke an installation token we handed out (it authenticates its own revocation)."""
        client = GitHub(
            TokenAuthStrategy(token),
            base_url=self._base_url,
            http_cache=False,
            auto_retry=False,
            async_transport=self._transport,
        )
        try:
            await self._call(client.rest.apps.async_revoke_installation_access_token())
        except GitHubError as exc:
            if exc.status != 401:  # already expired or revoked
                raise

    # --- webhook deliveries (App JWT) ----------------------------------------------------
    async def failed_deliveries(self, since: float) -> list[tuple[int, str]]:
        """(delivery id, guid) of deliveries since ``since`` whose guid never succeeded."""
        ok: set[str] = set()
        failed: dict[str, int] = {}
        cursor: str | None = None
        for _ in range(50):  # at most 5,000 deliveries back
            kwargs: dict[str, Any] = {"per_page": 100}
            if cursor:
                kwargs["cursor"] = cursor
            resp = await self._call(self._app.rest.apps.async_list_webhook_deliveries(**kwargs))
            items = resp.json()
            old = False
            for item in items:
                when = iso_epoch(str(item.get("delivered_at") or ""))
                if when and when < since:
                    old = True
                    continue
                guid = str(item["guid"])
                if item.get("status") == "OK" or 200 <= int(item.get("status_code") or 0) < 300:
                    ok.add(guid)
                else:
                    failed.setdefault(guid, int(item["id"]))
            cursor = _next_cursor(resp.headers.get("link", ""))
            if old or not cursor or not items:
                break
        return [(did, guid) for guid, did in failed.items() if guid not in ok]

    async def redeliver(self, delivery_id: int) -> None:
        await self._call(self._app.rest.apps.async_redeliver_webhook_delivery(delivery_id))
