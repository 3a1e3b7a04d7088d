"""Warm mirrors: a runner hears once per move of a base it works on, with a read-only token."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import prefetch
from bot.adapters.github import RepoInfo
from bot.core.protocol import AgentChoice, ImplementJob, Prefetch
from bot.prefetch import Prefetcher
from tests.harness import RUNNER_TOKEN, World, wait_until

REPO = "octo/app"


def _job(base_sha: str) -> ImplementJob:
    """A job on ``REPO`` whose base is ``base_sha``."""
    return ImplementJob(
        job_id=f"{REPO}#1@1", claim_secret="s" * 32, repo=REPO, issue=1, title="t",
        branch="stoneforge/1-t", base_sha=base_sha, clone_url=f"http://hub/{REPO}.git",
        token="ghs_job", agent=AgentChoice(name="script"),
    )  # fmt: skip


class _GitHub:
    """A ``TokenPort`` that records the tokens it mints and revokes."""

    def __init__(self) -> None:
        self.bases: dict[str, tuple[int, str]] = {}
        self.minted: list[tuple[int, str, bool]] = []
        self.revoked: list[str] = []

    async def repo(self, inst: int, repo: str) -> RepoInfo:
        return RepoInfo(repo, 1, "main", f"http://hub/{repo}.git")

    async def repo_token(self, inst: int, repo: str, *, write: bool = True) -> str:
        self.minted.append((inst, repo, write))
        return f"ghs_read{len(self.minted)}"

    async def revoke_token(self, token: str) -> None:
        self.revoked.append(token)


def test_a_runner_hears_once_per_move_of_a_base_it_worked_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefetch, "REVOKE_AFTER_S", 0)
    github = _GitHub()
    later: list[Awaitable[None]] = []
    prefetcher = Prefetcher(github, github.bases, later.append)

    async def run() -> None:
        assert await prefetcher.hint("r1") is None  # never worked on anything
        prefetcher.handed_out("r1", _job("a" * 40))
        assert await prefetcher.hint("r1") is None  # the base has not moved
        github.bases[REPO] = (7, "b" * 40)
        hints = await asyncio.gather(*(prefetcher.hint("r1") for _ in range(3)))  # 3 workers
        assert [h for h in hints if h] == [
            Prefetch(
                repo=REPO,
                clone_url=f"http://hub/{REPO}.git",
                base="main",
                base_sha="b" * 40,
                token="ghs_read1",
            )
        ]
        assert github.minted == [(7, REPO, False)], "one token, read only"
        assert await prefetcher.hint("r2") is None  # another runner never worked on it
        prefetcher.handed_out("r1", _job("c" * 40))
        github.bases[REPO] = (7, "c" * 40)  # its job already brought this one
        assert await prefetcher.hint("r1") is None
        assert len(later) == 1, "one revocation scheduled"
        await later[0]
        assert github.revoked == ["ghs_read1"]
        await prefetcher.close()
        assert github.revoked == ["ghs_read1"], "revoked once"

    asyncio.run(run())


def test_tokens_still_out_are_revoked_when_the_bot_stops() -> None:
    github = _GitHub()
    later: list[Awaitable[None]] = []
    prefetcher = Prefetcher(github, github.bases, later.append)

    async def run() -> None:
        prefetcher.handed_out("r1", _job("a" * 40))
        github.bases[REPO] = (7, "b" * 40)
        hint = await prefetcher.hint("r1")
        assert hint is not None
        assert github.revoked == []  # its minute has not passed
        await prefetcher.close()
        assert github.revoked == [hint.token]
        for scheduled in later:  # never run: closed, so no "never awaited" warning
            assert isinstance(scheduled, Coroutine)
            scheduled.close()

    asyncio.run(run())


def _git(token: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "http.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_a_maintainers_push_sends_an_idle_runner_a_read_only_token(world: World) -> None:
    number = world.file("Warm the mirror")["number"]
    world.label(number)
    job = wait_until(lambda: world.claim(wait_s=1), what="dispatch")
    world.push_main({"moved.txt": "the base moved\n"})
    tip = world.get("/repos/octo/app/git/ref/heads/main")["object"]["sha"]
    assert tip != job["base_sha"]

    def hinted() -> dict[str, Any] | None:
        resp = httpx.post(
            f"{world.bot_url}/runner/claim",
            json={"runner": "test", "worker": "w1", "wait_s": 1, "prefetch": True},
            headers={"Authorization": f"Bearer {RUNNER_TOKEN}"},
            timeout=15,
        )
        return resp.json()["prefetch"] if resp.status_code == 200 else None

    hint = wait_until(hinted, what="a prefetch hint")
    assert (hint["repo"], hint["base"], hint["base_sha"]) == ("octo/app", "main", tip)
    assert hinted() is None, "once per move"
    listed = _git(hint["token"], "ls-remote", hint["clone_url"], "refs/heads/main")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(tip)
    checkout = world.tmp / "prefetch-clone"
    assert _git(hint["token"], "clone", "-q", hint["clone_url"], str(checkout)).returncode == 0
    (checkout / "evil.txt").write_text("no\n")
    _git(hint["token"], "add", "-A", cwd=checkout)
    _git(hint["token"], "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "x",
         cwd=checkout)  # fmt: skip
    pushed = _git(hint["token"], "push", "-q", "origin", "HEAD:refs/heads/evil", cwd=checkout)
    assert pushed.returncode != 0, "the token reads only"
    assert "403" in pushed.stderr or "denied" in pushed.stderr.lower(), pushed.stderr
