"""The gate beyond required checks and approvals: GitHub's merge queue, code owners, and
re-running a GitHub Actions job.

``QueueCalls`` enqueues a pull request (``PUT .../merge-async`` with ``merge_action:
merge_queue``, never the merge endpoint, which GitHub refuses on such a base) and reads the
checks on a merge group's head. The module functions are the reads ``PullCalls.pull`` adds to a
snapshot when a branch rule asks for them: the base's CODEOWNERS rules and the changed files.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.adapters.github.client import AdapterBase, GitHubError
from bot.core.codeowners import LOCATIONS, OwnerRule, parse_codeowners

_ACTIONS_RUN = re.compile(r"/actions/runs/(\d+)(?:/|$)")
_MAX_FILES = 3000  # GitHub lists at most 3000 files of a pull request


@dataclass(frozen=True)
class EnqueueOutcome:
    """GitHub's answer to an enqueue: ``status`` is ``pending``, ``enqueued``, ``merged`` or
    ``failed`` (as ``GET .../merge-async/{uuid}`` says once, right after the request)."""

    status: str
    message: str
    uuid: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in ("pending", "enqueued", "merged")


class QueueCalls(AdapterBase):
    """GitHub's merge queue and the checks on a merge group's head."""

    async def enqueue(
        self, installation_id: int, repo: str, number: int, sha: str
    ) -> EnqueueOutcome:
        """Add the pull request to the base's merge queue at exactly ``sha``. GitHub checks only
        the pull request's own state at once (400: closed or draft); the rest in the
        background, so the result is read back once (it may still be pending)."""
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        try:
            resp = await self._call(
                pulls.async_merge_async(owner, name, number, merge_action="merge_queue", sha=sha)
            )
        except GitHubError as exc:
            if exc.status in (400, 409, 422):
                return EnqueueOutcome("failed", exc.message)
            raise
        data = resp.json()
        details = data.get("details") or {}
        ident = details.get("uuid")
        outcome = EnqueueOutcome(str(data.get("status")), str(details.get("message") or ""), ident)
        if outcome.status != "pending" or not ident:
            return outcome
        try:
            later = (
                await self._call(pulls.async_get_merge_async_result(owner, name, number, ident))
            ).json()
        except GitHubError:
            return outcome  # accepted; how it went is told by the webhooks
        words = str((later.get("details") or {}).get("message") or "")
        return EnqueueOutcome(str(later.get("status")), words, ident)

    async def checks_on(
        self, installation_id: int, repo: str, sha: str
    ) -> Mapping[str, tuple[str, str | None]]:
        """Check run name or status context -> (status, conclusion) on ``sha``, newest first."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        runs = await self._call(gh.rest.checks.async_list_for_ref(owner, name, sha, per_page=100))
        checks: dict[str, tuple[str, str | None]] = {}
        for run in runs.json().get("check_runs", []):
            checks.setdefault(run["name"], (run["status"], run.get("conclusion")))
        status = await self._call(gh.rest.repos.async_get_combined_status_for_ref(owner, name, sha))
        for item in status.json().get("statuses", []):
            state = item["state"]
            done = "completed" if state != "pending" else "in_progress"
            conclusion = {"success": "success", "failure": "failure", "error": "failure"}.get(state)
            checks.setdefault(item["context"], (done, conclusion))
        return checks


async def code_owner_rules(
    base: AdapterBase, installation_id: int, repo: str, branch: str
) -> tuple[OwnerRule, ...]:
    """The CODEOWNERS rules on ``branch`` (the first file of ``LOCATIONS`` there; none: no
    rules). Cached for a minute, as the branch's other rules are."""
    key = (repo, branch)
    cached = base._owners_cache.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    owner, name = repo.split("/", 1)
    gh = base._gh(installation_id)
    rules: tuple[OwnerRule, ...] = ()
    for path in LOCATIONS:
        try:
            resp = await base._call(gh.rest.repos.async_get_content(owner, name, path, ref=branch))
        except GitHubError as exc:
            if exc.status == 404:
                continue
            raise
        data = resp.json()
        if isinstance(data, Mapping) and data.get("type") == "file":
            text = base64.b64decode(str(data.get("content") or "")).decode(errors="replace")
            rules = parse_codeowners(text)
            break
    base._owners_cache[key] = (time.monotonic() + 60, rules)
    return rules


async def changed_files(
    base: AdapterBase, installation_id: int, repo: str, number: int
) -> tuple[str, ...]:
    """Every path the pull request changes (renamed files by both names), up to 3000."""
    owner, name = repo.split("/", 1)
    pulls = base._gh(installation_id).rest.pulls
    items = await base._pages(
        lambda page: pulls.async_list_files(owner, name, number, per_page=100, page=page),
        limit=_MAX_FILES // 100,
    )
    paths: dict[str, None] = {}
    for item in items:
        paths[str(item["filename"])] = None
        if item.get("previous_filename"):
            paths[str(item["previous_filename"])] = None
    return tuple(paths)


def actions_run_id(run: Mapping[str, Any]) -> int | None:
    """The workflow run a check run belongs to, when GitHub Actions made it (its app is
    ``github-actions`` and its details URL points at ``.../actions/runs/{id}``), else None."""
    app = run.get("app") or {}
    if app.get("slug") != "github-actions":
        return None
    found = _ACTIONS_RUN.search(str(run.get("details_url") or ""))
    return int(found.group(1)) if found else None
