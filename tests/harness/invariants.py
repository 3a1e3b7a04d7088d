"""What must hold after a sprint, judged from fakehub's own record, never from the bot's view.

A :class:`HubRecord` is what GitHub itself would know: fakehub's event log (``pr_opened``,
``merge``, ``check_completed`` ...), which issue each pull request closes (its body's closing
keyword, as GitHub links them), and the first-parent history of the base branch in git. Each
checker takes a record and returns its violations as sentences (empty: it holds):

- :func:`duplicate_pulls`: an issue with more than one pull request opened for it;
- :func:`double_merges`: a pull request merged twice, an issue whose work merged through two pull
  requests, or a pull request cited by two commits on the base branch;
- :func:`out_of_order_merges`: a task merged while one of its blockers had not merged before it
  (by the event log, and by the base branch's history);
- :func:`red_merges`: a merge whose head's required check was not green when it merged (the
  latest completed run of each required check on that head, in the log before the merge);
- :func:`unmerged`: an issue of the sprint without a merged pull request.

``tests/chaos/test_invariants.py`` runs each checker on a hand-made bad record, so each can fail.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fakehub.hub import CLOSING
from fakehub.server import FakeHub

GREEN = frozenset({"success", "neutral", "skipped"})
#: how a commit on the base names its pull request: squash/rebase "title (#N)", merge "#N from"
_CITES = re.compile(r"\(#(\d+)\)$|^Merge pull request #(\d+) from ")


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str


@dataclass(frozen=True)
class HubRecord:
    """fakehub's record of one repository: see the module doc."""

    events: tuple[dict[str, Any], ...]
    closes: Mapping[int, int]  # pull request number -> the issue it closes
    history: tuple[Commit, ...]  # the base branch, first parent, oldest first
    required: frozenset[str]
    base: str = "main"

    def merges(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "merge" and e.get("base") == self.base]


def record_of(hub: FakeHub, full_name: str) -> HubRecord:
    """The record of ``full_name`` on a running (or stopped) ``hub``, base = default branch."""
    repo = hub.state.repo(full_name)
    assert repo is not None, full_name
    closes = closes_of(hub, full_name)
    base = repo.default_branch
    protection = repo.protection.get(base)
    out = subprocess.run(
        ["git", "--git-dir", str(hub.git.path(full_name)), "log", "--first-parent",
         "--reverse", "--format=%H%x09%s", base],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    history = tuple(Commit(*line.split("\t", 1)) for line in out.splitlines() if line)
    repo_events = tuple(e for e in hub.events() if e.get("repo") in (None, full_name))
    required = frozenset(protection.contexts if protection else ())
    return HubRecord(repo_events, closes, history, required, base)


def closes_of(hub: FakeHub, full_name: str) -> dict[int, int]:
    """Pull request number -> the issue its body closes ("Closes #N"), as GitHub links them."""
    repo = hub.state.repo(full_name)
    assert repo is not None, full_name
    with hub.state.lock:
        pulls = [(i.number, i.body or "") for i in repo.issues.values() if i.pull is not None]
    closes = {}
    for number, body in pulls:
        linked = [int(m.group(2)) for m in CLOSING.finditer(body)
                  if m.group(1) in (None, full_name)]  # fmt: skip
        if linked:
            closes[number] = linked[0]
    return closes


def _issue_of(record: HubRecord, pr: int) -> int | None:
    return record.closes.get(pr)


def duplicate_pulls(record: HubRecord) -> list[str]:
    opened: dict[int, list[int]] = {}
    for e in record.events:
        if e["type"] == "pr_opened" and (issue := _issue_of(record, e["pr"])) is not None:
            opened.setdefault(issue, []).append(e["pr"])
    return [f"issue #{i} has {len(prs)} pull requests: {prs}"
            for i, prs in sorted(opened.items()) if len(prs) > 1]  # fmt: skip


def double_merges(record: HubRecord) -> list[str]:
    out = []
    merges = record.merges()
    for pr, n in sorted(Counter(e["pr"] for e in merges).items()):
        if n > 1:
            out.append(f"pull request #{pr} merged {n} times")
    by_issue: dict[int, set[int]] = {}
    for e in merges:
        if (issue := _issue_of(record, e["pr"])) is not None:
            by_issue.setdefault(issue, set()).add(e["pr"])
    out += [f"issue #{i} merged through {sorted(prs)}"
            for i, prs in sorted(by_issue.items()) if len(prs) > 1]  # fmt: skip
    cited = Counter(pr for c in record.history if (pr := _cited(c)) is not None)
    out += [f"{n} commits on {record.base} cite pull request #{pr}"
            for pr, n in sorted(cited.items()) if n > 1]  # fmt: skip
    on_base = {c.sha for c in record.history}
    out += [f"merge of #{e['pr']} ({e['merge_sha'][:10]}) is not on {record.base}"
            for e in merges if e["merge_sha"] not in on_base]  # fmt: skip
    return out


def _cited(commit: Commit) -> int | None:
    match = _CITES.search(commit.subject)
    return int(match.group(1) or match.group(2)) if match else None


def out_of_order_merges(record: HubRecord, blockers: Mapping[int, Iterable[int]]) -> list[str]:
    """``blockers``: issue -> the issues that block it (the dependencies the sprint filed)."""
    at: dict[int, int] = {}  # issue -> index of its merge in the event log
    sha: dict[int, str] = {}
    for index, e in enumerate(record.events):
        if e["type"] == "merge" and e.get("base") == record.base:
            if (issue := _issue_of(record, e["pr"])) is not None:
                at.setdefault(issue, index)
                sha.setdefault(issue, e["merge_sha"])
    position = {c.sha: i for i, c in enumerate(record.history)}
    out = []
    for issue, blocked_by in sorted(blockers.items()):
        if issue not in at:
            continue
        for blocker in sorted(blocked_by):
            if blocker not in at or at[blocker] > at[issue]:
                out.append(f"#{issue} merged before its blocker #{blocker}")
            elif position.get(sha[blocker], -1) > position.get(sha[issue], -1):
                out.append(f"#{issue} is on {record.base} before its blocker #{blocker}")
    return out


def red_merges(record: HubRecord) -> list[str]:
    latest: dict[tuple[str, str], str] = {}  # (sha, check) -> latest completed conclusion
    out = []
    for e in record.events:
        if e["type"] == "check_completed":
            latest[(e["sha"], e["name"])] = str(e["conclusion"])
        elif e["type"] == "merge" and e.get("base") == record.base:
            for name in sorted(record.required):
                seen = latest.get((e["head_sha"], name))
                said = e.get("checks", {}).get(name)
                if seen not in GREEN or said not in GREEN:
                    note = f" (its merge says {said})" if said != seen else ""
                    out.append(f"#{e['pr']} merged with {name} {seen or 'missing'}{note}")
    return out


def unmerged(record: HubRecord, issues: Iterable[int]) -> list[str]:
    merged = {_issue_of(record, e["pr"]) for e in record.merges()}
    return [f"#{i} never merged" for i in sorted(set(issues) - merged)]


def violations(record: HubRecord, blockers: Mapping[int, Iterable[int]]) -> list[str]:
    """Every invariant of a sprint over ``blockers``' issues (each issue a key, maybe blockless)."""
    return [
        *unmerged(record, blockers),
        *duplicate_pulls(record),
        *double_merges(record),
        *out_of_order_merges(record, blockers),
        *red_merges(record),
    ]
