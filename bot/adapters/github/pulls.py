"""Pull requests: opening them, their reviews and checks, merging and branch upkeep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

from bot.adapters.github.client import AdapterBase, GitHubError
from bot.adapters.github.gate import actions_run_id, changed_files, code_owner_rules
from bot.adapters.github.records import MergeOutcome
from bot.core.codeowners import OwnerRule
from bot.core.steward import PullSnapshot, Review, ReviewComment, failure_text


class PullCalls(AdapterBase):
    """Pull requests, their reviews and required checks, merges and head branches."""

    async def open_pull(
        self, installation_id: int, repo: str, *, head: str, base: str, title: str, body: str
    ) -> int:
        """Open a pull request; GitHub answers 422 when one is already open for ``head``
        (callers look for it first with ``pull_for_head``)."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        resp = await self._call(
            gh.rest.pulls.async_create(owner, name, title=title, head=head, base=base, body=body)
        )
        return int(resp.json()["number"])

    async def pull_for_head(
        self, installation_id: int, repo: str, head: str
    ) -> tuple[int, str] | None:
        """The open pull request from branch ``head`` of ``repo``: (number, body), or None."""
        owner, name = repo.split("/", 1)
        resp = await self._call(
            self._gh(installation_id).rest.pulls.async_list(
                owner, name, state="open", head=f"{owner}:{head}"
            )
        )
        for pull in resp.json():
            if pull["head"]["ref"] == head:
                return int(pull["number"]), str(pull.get("body") or "")
        return None

    async def update_pull(self, installation_id: int, repo: str, number: int, *, body: str) -> None:
        """Replace a pull request's body."""
        owner, name = repo.split("/", 1)
        await self._call(
            self._gh(installation_id).rest.pulls.async_update(owner, name, number, body=body)
        )

    async def pull_files(
        self, installation_id: int, repo: str, number: int, limit: int = 50
    ) -> tuple[str, list[str]]:
        """A pull request's body and the paths it changed (the first ``limit``): what landed,
        for the plan context of the tasks it unblocks."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        data = (await self._call(gh.rest.pulls.async_get(owner, name, number))).json()
        resp = await self._call(
            gh.rest.pulls.async_list_files(owner, name, number, per_page=min(100, limit))
        )
        files = [str(item["filename"]) for item in resp.json()][:limit]
        return str(data.get("body") or ""), files

    async def reviews(self, installation_id: int, repo: str, number: int) -> list[Review]:
        """A pull request's submitted reviews, oldest first (everyone's: callers filter)."""
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        items = await self._pages(
            lambda page: pulls.async_list_reviews(owner, name, number, per_page=100, page=page)
        )
        found: list[Review] = []
        for item in items:
            user = item.get("user") or {}
            found.append(
                Review(
                    id=int(item["id"]),
                    author=str(user.get("login") or ""),
                    author_type=str(user.get("type") or "User"),
                    state=str(item.get("state") or "").upper(),
                    body=str(item.get("body") or ""),
                    commit_id=item.get("commit_id"),
                )
            )
        return found

    async def submit_review(
        self,
        installation_id: int,
        repo: str,
        number: int,
        *,
        commit_id: str,
        event: Literal["APPROVE", "REQUEST_CHANGES", "COMMENT"],
        body: str,
        comments: Sequence[tuple[str, int, str]] = (),
    ) -> int:
        """Submit a review as the App on ``commit_id`` (``comments``: ``(path, line, body)``
        on the right side of the diff); its id. GitHub answers 422 when a line is not part of
        the diff."""
        owner, name = repo.split("/", 1)
        data: dict[str, Any] = {"commit_id": commit_id, "event": event, "body": body}
        if comments:
            data["comments"] = [
                {"path": path, "line": line, "side": "RIGHT", "body": text}
                for path, line, text in comments
            ]
        pulls = self._gh(installation_id).rest.pulls
        resp = await self._call(pulls.async_create_review(owner, name, number, data=data))  # type: ignore[call-overload]
        return int(resp.json()["id"])

    async def review_comments(
        self, installation_id: int, repo: str, number: int
    ) -> list[ReviewComment]:
        """A pull request's inline review comments, oldest first."""
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        items = await self._pages(
            lambda page: pulls.async_list_review_comments(
                owner, name, number, per_page=100, page=page
            )
        )
        found: list[ReviewComment] = []
        for item in items:
            line = item.get("line") or item.get("original_line")
            review_id = item.get("pull_request_review_id")
            found.append(
                ReviewComment(
                    id=int(item["id"]),
                    review_id=int(review_id) if review_id is not None else None,
                    author=str((item.get("user") or {}).get("login") or ""),
                    path=str(item.get("path") or ""),
                    line=int(line) if isinstance(line, int) else None,
                    body=str(item.get("body") or ""),
                )
            )
        return found

    async def required_checks(
        self, installation_id: int, repo: str, branch: str
    ) -> tuple[str, ...]:
        """The status checks ``branch`` requires: classic branch protection's and every active
        ruleset's, together (GitHub applies all of them). Cached for a minute."""
        key = (repo, branch)
        cached = self._required_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        classic, (rules, approvals, flags), owners = await asyncio.gather(
            self._protected_checks(installation_id, repo, branch),
            self._ruleset_rules(installation_id, repo, branch),
            self._protected_code_owners(installation_id, repo, branch),
        )
        if owners:
            flags |= {"code_owner_review"}
        required = tuple(dict.fromkeys(classic + rules))
        self._required_cache[key] = (time.monotonic() + 60, required)
        self._approvals_cache[key] = approvals
        self._rule_flags[key] = flags
        return required

    async def required_approvals(self, installation_id: int, repo: str, branch: str) -> int:
        """The approving reviews the rulesets on ``branch`` require (0: none); read and cached
        with ``required_checks``. Classic protection's are left to GitHub's ``blocked``."""
        await self.required_checks(installation_id, repo, branch)
        return self._approvals_cache.get((repo, branch), 0)

    async def rule_flags(self, installation_id: int, repo: str, branch: str) -> frozenset[str]:
        """The rules on ``branch`` the gate honours beyond checks and approvals:
        ``merge_queue`` and ``code_owner_review``; read and cached with ``required_checks``."""
        await self.required_checks(installation_id, repo, branch)
        return self._rule_flags.get((repo, branch), frozenset())

    async def _protected_code_owners(self, installation_id: int, repo: str, branch: str) -> bool:
        """Whether classic protection's required reviews include code owners' (404: no
        required reviews, or the branch is not protected)."""
        owner, name = repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.repos.async_get_pull_request_review_protection(
                    owner, name, branch
                )
            )
        except GitHubError as exc:
            if exc.status != 404:
                raise
            return False
        return bool(resp.json().get("require_code_owner_reviews"))

    async def _protected_checks(
        self, installation_id: int, repo: str, branch: str
    ) -> tuple[str, ...]:
        owner, name = repo.split("/", 1)
        try:
            resp = await self._call(
                self._gh(installation_id).rest.repos.async_get_status_checks_protection(
                    owner, name, branch
                )
            )
        except GitHubError as exc:
            if exc.status != 404:  # not protected
                raise
            return ()
        data = resp.json()
        names = [c["context"] for c in data.get("checks") or ()] or list(data.get("contexts") or ())
        return tuple(names)

    async def _ruleset_rules(
        self, installation_id: int, repo: str, branch: str
    ) -> tuple[tuple[str, ...], int, frozenset[str]]:
        """The contexts of the ``required_status_checks`` rules active on ``branch``, the
        most approving reviews a ``pull_request`` rule there requires, and its flags
        (``rule_flags``)."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        try:
            rules = await self._pages(
                lambda page: gh.rest.repos.async_get_branch_rules(
                    owner, name, branch, per_page=100, page=page
                )
            )
        except GitHubError as exc:
            if exc.status != 404:  # rulesets unavailable here (an older GitHub Enterprise)
                raise
            return (), 0, frozenset()
        names: list[str] = []
        approvals = 0
        flags: set[str] = set()
        for rule in rules:
            params = rule.get("parameters") or {}
            if rule.get("type") == "required_status_checks":
                names += [str(c["context"]) for c in params.get("required_status_checks") or ()]
            elif rule.get("type") == "pull_request":
                count = int(params.get("required_approving_review_count") or 0)
                approvals = max(approvals, count)  # the most restrictive applies
                if params.get("require_code_owner_review"):
                    flags.add("code_owner_review")
            elif rule.get("type") == "merge_queue":
                flags.add("merge_queue")
        return tuple(names), approvals, frozenset(flags)

    async def pull(
        self, installation_id: int, repo: str, number: int, extra_required: tuple[str, ...] = ()
    ) -> PullSnapshot:
        """One fresh snapshot of a pull request: state, mergeability, checks on its head."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        data = (await self._call(gh.rest.pulls.async_get(owner, name, number))).json()
        head, base = data["head"]["sha"], data["base"]["ref"]
        # The rest depends only on the head and the base: asked at once (a merge waits on it).
        (checks, check_ids), required, approvals, flags = await asyncio.gather(
            self.commit_checks(installation_id, repo, head),
            self.required_checks(installation_id, repo, base),
            self.required_approvals(installation_id, repo, base),
            self.rule_flags(installation_id, repo, base),
        )
        owners: tuple[OwnerRule, ...] | None = None
        files: tuple[str, ...] = ()
        if "code_owner_review" in flags:
            owners, files = await asyncio.gather(
                code_owner_rules(self, installation_id, repo, base),
                changed_files(self, installation_id, repo, number),
            )
        return PullSnapshot(
            number=number,
            state=data["state"],
            merged=bool(data.get("merged")),
            head_sha=head,
            head_ref=data["head"]["ref"],
            base_ref=base,
            mergeable=data.get("mergeable"),
            mergeable_state=str(data.get("mergeable_state") or "unknown"),
            checks=checks,
            required=tuple(dict.fromkeys(required + extra_required)),
            merge_sha=data.get("merge_commit_sha") if data.get("merged") else None,
            check_ids=check_ids,
            required_approvals=approvals,
            merge_queue="merge_queue" in flags,
            code_owners=owners,
            files=files,
        )

    async def commit_checks(
        self, installation_id: int, repo: str, sha: str
    ) -> tuple[dict[str, tuple[str, str | None]], dict[str, int]]:
        """The checks on a commit: name -> (status, conclusion) of the newest check run or
        commit status of that name, and name -> the newest check run's id."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        checks: dict[str, tuple[str, str | None]] = {}
        check_ids: dict[str, int] = {}
        runs, status = await asyncio.gather(
            self._call(gh.rest.checks.async_list_for_ref(owner, name, sha, per_page=100)),
            self._call(gh.rest.repos.async_get_combined_status_for_ref(owner, name, sha)),
        )
        # Newest run per name wins (GitHub lists newest first).
        for run in runs.json().get("check_runs", []):
            checks.setdefault(run["name"], (run["status"], run.get("conclusion")))
            check_ids.setdefault(run["name"], int(run["id"]))
        for item in status.json().get("statuses", []):
            state = item["state"]
            done = state != "pending"
            conclusion = {"success": "success", "failure": "failure", "error": "failure"}.get(state)
            checks.setdefault(item["context"], ("completed" if done else "in_progress", conclusion))
        return checks, check_ids

    async def merge(
        self,
        installation_id: int,
        repo: str,
        number: int,
        *,
        sha: str,
        method: Literal["merge", "squash", "rebase"],
        title: str,
    ) -> MergeOutcome:
        """Merge at exactly ``sha``. A merge that failed, or was refused, is checked against
        the pull request itself: GitHub can merge and then fail to answer (a 5xx, or no answer),
        and the retry of such a merge is refused (405) because the pull request is merged. A
        merged pull request is reported merged, with its merge commit."""
        owner, name = repo.split("/", 1)
        pulls = self._gh(installation_id).rest.pulls
        try:
            resp = await self._call(
                pulls.async_merge(
                    owner, name, number, sha=sha, merge_method=method, commit_title=title
                )
            )
        except GitHubError as exc:
            if exc.status not in (0, 405, 409, 422) and exc.status < 500:
                raise
            merged = await self._merged_after_all(installation_id, owner, name, number)
            if merged is not None:
                return merged
            if exc.status in (405, 409, 422):
                return MergeOutcome(False, None, exc.status, exc.message)
            raise
        data = resp.json()
        return MergeOutcome(bool(data.get("merged")), data.get("sha"), 200, data.get("message", ""))

    async def _merged_after_all(
        self, installation_id: int, owner: str, name: str, number: int
    ) -> MergeOutcome | None:
        """The pull request read back after a failed merge: its merge, if it is merged."""
        pulls = self._gh(installation_id).rest.pulls
        try:
            data = (await self._call(pulls.async_get(owner, name, number))).json()
        except GitHubError:
            return None  # not known: the merge's own failure stands
        if not data.get("merged"):
            return None
        return MergeOutcome(True, data.get("merge_commit_sha"), 200, "merged (read back)")

    async def update_branch(self, installation_id: int, repo: str, number: int, sha: str) -> bool:
        owner, name = repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.pulls.async_update_branch(
                    owner, name, number, expected_head_sha=sha
                )
            )
        except GitHubError as exc:
            if exc.status == 422:
                return False
            raise
        return True

    async def rerun_check(self, installation_id: int, repo: str, check_run_id: int) -> bool:
        """Ask GitHub to run a check run again on the same head: a GitHub Actions job by
        re-running its workflow run's failed jobs (``rerun-failed-jobs``), any other App's run
        by rerequesting it (``check_run.rerequested`` goes to the App that made it). ``False``
        when GitHub will not: not rerequestable (422), another App's (403), or gone (404)."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        try:
            run = (await self._call(gh.rest.checks.async_get(owner, name, check_run_id))).json()
            run_id = actions_run_id(run)
            if run_id is not None:
                await self._call(
                    gh.rest.actions.async_re_run_workflow_failed_jobs(owner, name, run_id)
                )
                return True
            await self._call(gh.rest.checks.async_rerequest_run(owner, name, check_run_id))
        except GitHubError as exc:
            if exc.status in (403, 404, 422):
                return False
            raise
        return True

    async def check_failures(
        self, installation_id: int, repo: str, sha: str, names: tuple[str, ...]
    ) -> tuple[str, ...]:
        """The red checks ``names`` on ``sha`` as an agent is given them
        (``bot.core.steward.failure_text``): a check run's output title, summary and text
        (newest run per name), a commit status's description and link."""
        owner, name = repo.split("/", 1)
        gh = self._gh(installation_id)
        runs = await self._call(gh.rest.checks.async_list_for_ref(owner, name, sha, per_page=100))
        newest: dict[str, dict[str, Any]] = {}
        for run in runs.json().get("check_runs", []):
            newest.setdefault(run["name"], run)
        statuses: dict[str, dict[str, Any]] = {}
        if any(n not in newest for n in names):
            status = await self._call(
                gh.rest.repos.async_get_combined_status_for_ref(owner, name, sha)
            )
            for item in status.json().get("statuses", []):
                statuses.setdefault(item["context"], item)
        out: list[str] = []
        for check in names:
            if (run := newest.get(check)) is not None:
                output = run.get("output") or {}
                out.append(
                    failure_text(
                        check,
                        run.get("conclusion"),
                        output.get("title") or "",
                        output.get("summary") or "",
                        output.get("text") or "",
                    )
                )
            elif (item := statuses.get(check)) is not None:
                words = item.get("description") or ""
                out.append(
                    failure_text(check, item.get("state"), words, item.get("target_url") or "")
                )
            else:
                out.append(failure_text(check, None))
        return tuple(out)

    async def delete_branch(self, installation_id: int, repo: str, branch: str) -> None:
        owner, name = repo.split("/", 1)
        try:
            await self._call(
                self._gh(installation_id).rest.git.async_delete_ref(owner, name, f"heads/{branch}")
            )
        except GitHubError as exc:
            if exc.status not in (404, 422):  # already gone
                raise
