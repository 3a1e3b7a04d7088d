"""Warm mirrors: when a repository's default branch moves, an idle runner that works on it
fetches the new tip before its next task needs it.

Every merge moves the base, so without this the next task's workspace starts with a fetch (a
round trip and a handful of git processes, the largest part of dispatch latency at one label
a second). A runner's next job then finds the job's ``base_sha`` already in its mirror.

A claim that finds no work answers, for a runner that asked for hints (``"prefetch": true`` in
its claim), a ``Prefetch`` (``{"prefetch": {repo, clone_url, base, base_sha, token}}``) once
per move of a base it has worked on, to one of its waiting workers. The token reads that one
repository only (``contents: read``) and is revoked a minute later, or when the bot stops, if
that is sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from bot.adapters.github import GitHubError
from bot.core.protocol import Job, Prefetch
from bot.ports import TokenPort

log = logging.getLogger(__name__)

REVOKE_AFTER_S = 60.0


class Prefetcher:
    """``bases``: each repository's default branch tip as last seen moving (``Signals.bases``,
    read at each hint); ``background`` runs the delayed revocations."""

    def __init__(
        self,
        github: TokenPort,
        bases: Mapping[str, tuple[int, str]],
        background: Callable[[Awaitable[None]], None],
    ) -> None:
        self.github = github
        self.bases = bases
        self._background = background
        self._known: dict[str, dict[str, str]] = {}  # runner -> repo -> base its mirror has
        self._outstanding: set[str] = set()  # tokens handed out and not revoked yet

    def handed_out(self, runner: str, job: Job) -> None:
        """``runner`` got ``job``: its mirror of the job's repository now has the job's base."""
        if job.base_sha:
            self._known.setdefault(runner, {})[job.repo] = job.base_sha

    async def hint(self, runner: str) -> Prefetch | None:
        """A base ``runner`` works on has moved since its mirror saw it: what to fetch."""
        for repo, seen in list(self._known.get(runner, {}).items()):
            tip = self.bases.get(repo)
            if tip is None or tip[1] == seen:
                continue
            inst, sha = tip
            self._known[runner][repo] = sha  # before any await: one of its workers gets it
            try:
                info = await self.github.repo(inst, repo)
                token = await self.github.repo_token(inst, repo, write=False)
            except GitHubError as exc:
                log.warning("prefetch_token_failed %s: %s", repo, exc)
                return None
            self._outstanding.add(token)
            self._background(self._revoke_later(token))
            log.info("prefetch_hint", extra={"repo": repo, "runner": runner})
            return Prefetch(
                repo=repo,
                clone_url=info.clone_url,
                base=info.default_branch,
                base_sha=sha,
                token=token,
            )
        return None

    async def _revoke_later(self, token: str) -> None:
        await asyncio.sleep(REVOKE_AFTER_S)
        await self._revoke(token)

    async def _revoke(self, token: str) -> None:
        if token not in self._outstanding:
            return
        self._outstanding.discard(token)
        try:
            await self.github.revoke_token(token)
        except GitHubError as exc:
            log.warning("prefetch_token_revoke_failed: %s", exc)

    async def close(self) -> None:
        """The bot is stopping: revoke the tokens whose minute has not passed yet."""
        await asyncio.gather(*(self._revoke(t) for t in list(self._outstanding)))
