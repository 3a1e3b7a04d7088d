"""Fixtures for the director's tests: ``w``, fakehub with a repository and its epic (issue 1),
the GitHub adapter installed on it (paced by ``write_budget``, GitHub's defaults unless a module
overrides it), and a store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.adapters.github import GitHubAdapter, WriteBudget
from bot.store import Store
from fakehub.server import FakeHub


@dataclass
class World:
    hub: FakeHub
    gh: GitHubAdapter
    inst: int
    store: Store


@pytest.fixture
def write_budget() -> WriteBudget | None:
    return None


@pytest.fixture
async def w(tmp_path: Path, write_budget: WriteBudget | None) -> AsyncIterator[World]:
    with FakeHub(tmp_path / "hub") as hub:
        lead = hub.create_user("lead")
        hub.create_user("octo", type="Organization")
        hub.create_repo("octo", "app", {"README.md": "x\n"})
        hub.set_permission("octo/app", "lead", "admin")
        app = hub.create_app(
            slug="sf", webhook_url=None, webhook_secret="s", events=[],
            permissions={"issues": "write", "contents": "read"},
        )  # fmt: skip
        inst = hub.install_app(app.id, "octo", ["app"])
        headers = {"Authorization": f"token {lead.token}"}
        async with httpx.AsyncClient(base_url=hub.api_url, headers=headers) as api:
            (await api.post("/repos/octo/app/issues", json={"title": "Epic"})).raise_for_status()
        gh = GitHubAdapter(
            app_id=app.id,
            private_key=app.private_key_pem,
            base_url=hub.api_url,
            write_budget=write_budget,
        )
        store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
        try:
            yield World(hub, gh, inst, store)
        finally:
            store.close()
            await gh.aclose()
