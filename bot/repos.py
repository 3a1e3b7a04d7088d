"""Repositories the App is installed on: their labels and their ``.github/stoneforge.yml``.

The configuration is read from the default branch only. An invalid file is reported on GitHub
(a failing ``stoneforge/config`` check run on the default branch's head, naming the key and the
reason) and the last valid configuration stays in force.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from bot.adapters.github import GitHubError, RepoInfo
from bot.core.config import AgentChoice, RepoConfig, parse_repo_config, render_config_errors
from bot.director.filing import DRAFT_LABEL, DRAFT_LABEL_STYLE
from bot.ports import RepoPort
from bot.reporting import STATE_LABELS, TRIGGER_LABEL_STYLE
from bot.settings import BotSettings
from bot.store import Store

log = logging.getLogger(__name__)

CONFIG_PATH = ".github/stoneforge.yml"
CONFIG_CHECK = "stoneforge/config"


class Repos:
    def __init__(self, settings: BotSettings, store: Store, github: RepoPort) -> None:
        self.settings = settings
        self.store = store
        self.github = github
        self._configs: dict[str, RepoConfig] = {}
        self._known: set[str] = set()  # repositories whose configuration has been read
        self._setting_up: dict[str, asyncio.Future[None]] = {}
        self._default = RepoConfig(
            trigger_label=settings.trigger_label,
            agent=AgentChoice(name=settings.default_agent),  # type: ignore[arg-type]
        )

    def config(self, repo: str) -> RepoConfig:
        return self._configs.get(repo, self._default)

    def _with_defaults(self, config: RepoConfig) -> RepoConfig:
        """Keys the file leaves out take the operator's defaults (environment), not ours."""
        update: dict[str, object] = {}
        for key in ("trigger_label", "agent"):
            if key not in config.model_fields_set:
                update[key] = getattr(self._default, key)
        return config.model_copy(update=update) if update else config

    async def load_known(self) -> None:
        """At start-up: the last valid configuration of every known repository."""
        for record in await asyncio.to_thread(self.store.repos):
            self._known.add(record.repo)
            if record.config_text:
                parsed = parse_repo_config(record.config_text)
                if isinstance(parsed, RepoConfig):
                    self._configs[record.repo] = self._with_defaults(parsed)

    async def ensure(self, installation_id: int, repo: str) -> None:
        """Before acting on a repository's event: its configuration has been read.

        An event can arrive before reconciliation has set a new installation's repository up
        (deliveries are handled concurrently); acting on it with the defaults would miss the
        repository's trigger label, agents and routing. One read per repository and process.
        """
        if repo in self._known:
            return
        running = self._setting_up.get(repo)
        if running is None:
            running = asyncio.ensure_future(self._first_setup(installation_id, repo))
            self._setting_up[repo] = running
            running.add_done_callback(lambda _: self._setting_up.pop(repo, None))
        await asyncio.shield(running)

    async def _first_setup(self, installation_id: int, repo: str) -> None:
        try:
            info = await self.github.repo(installation_id, repo)
        except GitHubError as exc:
            log.warning("repo_unreadable %s: %s", repo, exc)  # the defaults, until next time
            return
        await self.setup(installation_id, info)

    async def setup(self, installation_id: int, info: RepoInfo) -> None:
        """First use of a repository: remember it, create our labels, read its configuration."""
        await asyncio.to_thread(
            functools.partial(
                self.store.upsert_repo,
                info.full_name,
                installation_id,
                default_branch=info.default_branch,
            )
        )
        records = {r.repo: r for r in await asyncio.to_thread(self.store.repos, installation_id)}
        record = records.get(info.full_name)
        await self.load_config(installation_id, info)
        self._known.add(info.full_name)
        if record is None or not record.labels_ready:
            labels = dict(STATE_LABELS)
            labels[self.config(info.full_name).trigger_label] = TRIGGER_LABEL_STYLE
            labels[DRAFT_LABEL] = DRAFT_LABEL_STYLE  # a filed plan's tasks, until approved
            await self.github.ensure_labels(installation_id, info.full_name, labels)
            await asyncio.to_thread(self.store.mark_labels_ready, info.full_name)

    async def remove(self, repo: str) -> None:
        self._configs.pop(repo, None)
        self._known.discard(repo)
        await asyncio.to_thread(self.store.remove_repo, repo)

    async def load_config(self, installation_id: int, info: RepoInfo) -> RepoConfig:
        repo = info.full_name
        try:
            found = await self.github.file(installation_id, repo, CONFIG_PATH)
        except GitHubError as exc:
            log.warning("config_unreadable %s: %s", repo, exc)
            return self.config(repo)
        text, sha = found if found else (None, None)
        parsed = parse_repo_config(text)
        if isinstance(parsed, RepoConfig):
            was_broken = await self._had_error(repo)
            self._configs[repo] = self._with_defaults(parsed) if text else self._default
            await asyncio.to_thread(
                functools.partial(self.store.save_config, repo, text=text, sha=sha, error=None)
            )
            if was_broken:
                await self._check(installation_id, info, "success", "Configuration is valid", "")
            return self.config(repo)
        summary = render_config_errors(parsed, path=CONFIG_PATH, sha=sha)
        first = parsed[0]
        await asyncio.to_thread(
            functools.partial(self.store.save_config, repo, text=None, sha=sha, error=summary)
        )
        title = f"Invalid {CONFIG_PATH}: {first.path or 'file'}: {first.message}"[:200]
        await self._check(installation_id, info, "failure", title, summary)
        log.warning("config_invalid %s: %s", repo, title)
        return self.config(repo)

    async def _had_error(self, repo: str) -> bool:
        for record in await asyncio.to_thread(self.store.repos):
            if record.repo == repo:
                return bool(record.config_error)
        return False

    async def _check(
        self, installation_id: int, info: RepoInfo, conclusion: str, title: str, summary: str
    ) -> None:
        try:
            head = await self.github.branch_sha(
                installation_id, info.full_name, info.default_branch
            )
            await self.github.report_check(
                installation_id,
                info.full_name,
                head,
                name=CONFIG_CHECK,
                conclusion=conclusion,
                title=title,
                summary=summary or title,
            )
        except GitHubError as exc:
            log.warning("config_check_failed %s: %s", info.full_name, exc)
