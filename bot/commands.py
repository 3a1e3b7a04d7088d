"""Comment commands: ``/stoneforge <verb>`` on an issue, acted on once, by writers.

``bot.handlers.comments`` hands each new comment here (never an edit: an edited command is
not a new one; bots only when the repository allows them; never the App's own). Then:

1. the comment's text is parsed (``bot.core.commands.parse_command``): quoted, fenced, inline
   or hidden commands are no commands; no command, nothing happens;
2. a writing verb (``WRITING_VERBS``) needs write, maintain or admin permission, read from
   GitHub (a comment's ``author_association`` is not a permission); an allowed bot has it;
3. the comment is taken once (``take_command``: its id is the key), so a redelivered webhook,
   another replica or a restart never acts twice; a refusal is taken too, so it is said once;
4. a taken command gets the eyes reaction, then is carried out: ``plan``, ``approve``,
   ``replan`` and an epic's ``status`` by the director (``DirectorPort``), the task verbs here
   through the lifecycle (``Transitions``), each answered by a short reply when there is
   something to say.

``pause`` and ``resume`` act on what the issue is: the repository on its control issue (an
issue labeled ``stoneforge:control``), every task of the plan on an epic, else the task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core.commands import HELP_TEXT, WRITING_VERBS, Command, Verb, parse_command
from bot.core.lifecycle import CancelledBy, Restarted
from bot.core.model import IssueRef, Task, TaskState
from bot.core.render_text import format_cost
from bot.issue_sync import WRITE_PERMISSIONS
from bot.ports import Clock, CommandPort, CommandStore, DirectorPort, Transitions
from bot.signals import Signals

log = logging.getLogger(__name__)

#: The label of a repository's control issue: ``pause`` and ``resume`` there hold the repository.
CONTROL_LABEL = "stoneforge:control"

NOT_A_TASK = "This issue is not a Stoneforge task (nor an epic with a plan)."


@dataclass(frozen=True)
class CommandComment:
    """A new comment, as the webhook gave it: where, which, what, by whom."""

    installation_id: int
    ref: IssueRef
    comment_id: int
    body: str
    sender: str
    sender_type: str = "User"  # "Bot" only for a bot the repository allows


class NoDirector:
    """The ``DirectorPort`` until the director is wired in: plans are not available."""

    UNAVAILABLE = "Planning is not available yet on this installation."

    async def plan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None:
        return self.UNAVAILABLE

    async def approve(self, installation_id: int, epic: IssueRef, *, by: str) -> str | None:
        return self.UNAVAILABLE

    async def replan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None:
        return self.UNAVAILABLE

    async def status(self, installation_id: int, ref: IssueRef) -> str | None:
        return None

    async def plan_tasks(self, epic: IssueRef) -> list[IssueRef] | None:
        return None

    async def set_paused(self, epic: IssueRef, paused: bool) -> bool:
        return False


class CommandHandler:
    """Carries out comment commands (see the module's docstring)."""

    def __init__(
        self,
        github: CommandPort,
        store: CommandStore,
        views: Transitions,
        director: DirectorPort,
        signals: Signals,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.views = views
        self.director = director
        self.signals = signals
        self.clock = clock

    async def handle(self, comment: CommandComment) -> None:
        command = parse_command(comment.body)
        if command is None:
            return
        inst, ref = comment.installation_id, comment.ref
        allowed = await self._may_run(comment, command)
        taken = await asyncio.to_thread(
            self.store.take_command,
            comment.comment_id,
            ref.repo,
            ref.number,
            command.verb.value,
            comment.sender,
            self.clock(),
        )
        if not taken:
            log.info("command_already_taken", extra={"comment_id": comment.comment_id})
            return
        if not allowed:
            await self._finish(comment, "refused", self._refusal(comment, command))
            return
        await self.github.react_to_comment(inst, ref.repo, comment.comment_id, "eyes")
        log.info("command_taken", extra={"verb": command.verb.value, "sender": comment.sender})
        reply = await self._run(comment, command)
        await self._finish(comment, "done", reply)

    async def _may_run(self, comment: CommandComment, command: Command) -> bool:
        if command.verb not in WRITING_VERBS or comment.sender_type == "Bot":
            return True  # reading verbs are for everyone; an allowed bot was let through
        perm = await self.github.permission(
            comment.installation_id, comment.ref.repo, comment.sender
        )
        return perm in WRITE_PERMISSIONS

    @staticmethod
    def _refusal(comment: CommandComment, command: Command) -> str:
        return (
            f"Sorry @{comment.sender}, only people with write access to this repository can "
            f"run `/stoneforge {command.verb.value}`."
        )

    async def _finish(self, comment: CommandComment, outcome: str, reply: str | None) -> None:
        if reply:
            await self.github.reply(comment.installation_id, comment.ref, reply)
        await asyncio.to_thread(self.store.command_outcome, comment.comment_id, outcome)

    async def _run(self, comment: CommandComment, command: Command) -> str | None:
        inst, ref, by = comment.installation_id, comment.ref, comment.sender
        match command.verb:
            case Verb.PLAN:
                return await self.director.plan(
                    inst, ref, guidance=command.args, by=by, comment_id=comment.comment_id
                )
            case Verb.APPROVE:
                return await self.director.approve(inst, ref, by=by)
            case Verb.REPLAN:
                return await self.director.replan(
                    inst, ref, guidance=command.args, by=by, comment_id=comment.comment_id
                )
            case Verb.STATUS:
                return await self._status(inst, ref)
            case Verb.RETRY:
                return await self._each_task(ref, functools.partial(self._retry, by=by))
            case Verb.CANCEL:
                return await self._each_task(ref, functools.partial(self._cancel, by=by))
            case Verb.PAUSE | Verb.RESUME:
                return await self._pause(inst, ref, command.verb is Verb.PAUSE)
            case Verb.PRIORITY:
                if command.error is not None or command.priority is None:
                    return f"`/stoneforge priority`: {command.error}."
                level = command.priority
                return await self._each_task(ref, functools.partial(self._priority, level=level))
            case Verb.HELP | Verb.UNKNOWN:
                return HELP_TEXT

    # --- the task verbs ----------------------------------------------------------------------

    async def _targets(self, ref: IssueRef) -> list[Task] | None:
        """The tasks a verb on ``ref`` acts on: the plan's on an epic, else the issue's own
        task (None: neither)."""
        planned = await self.director.plan_tasks(ref)
        refs = planned if planned is not None else [ref]
        found = [await asyncio.to_thread(self.store.get_task, r) for r in refs]
        tasks = [t for t in found if t is not None]
        return tasks if tasks or planned is not None else None

    async def _each_task(self, ref: IssueRef, act: Callable[[Task], Awaitable[str]]) -> str:
        tasks = await self._targets(ref)
        if tasks is None:
            return NOT_A_TASK
        lines = [await act(task) for task in tasks]
        return "\n".join(lines) if lines else "The plan has no tasks yet."

    async def _retry(self, task: Task, *, by: str) -> str:
        if task.state not in (TaskState.FAILED, TaskState.CANCELLED):
            return (
                f"#{task.number} is {task.state.value}: only a failed or cancelled task is retried."
            )
        # As a relabel does: fresh budgets of attempts and spend, from a fresh base.
        await self.views.transition(
            task,
            TaskState.QUEUED,
            Restarted(by, via="command"),
            worker=None,
            attempt=0,
            not_before=None,
            rate_limits=(),
            cost_at_restart_usd=task.cost_usd,
        )
        return f"#{task.number} is queued again."

    async def _cancel(self, task: Task, *, by: str) -> str:
        stoppable = (TaskState.QUEUED, TaskState.RUNNING, TaskState.IN_REVIEW)
        if task.state not in stoppable:
            return f"#{task.number} is {task.state.value}: there is nothing to cancel."
        # A running job is taken back as an untriggered task's is: its reports are refused
        # from now on, since the task is no longer running.
        await self.views.transition(task, TaskState.CANCELLED, CancelledBy(by))
        return f"#{task.number} is cancelled; `/stoneforge retry` queues it again."

    async def _priority(self, task: Task, *, level: int) -> str:
        await asyncio.to_thread(functools.partial(self.store.update_task, task.ref, priority=level))
        self.signals.ready_changed.set()  # the dispatch order changed
        await self.views.refresh_views()
        return f"#{task.number} now has priority p{level}."

    async def _pause(self, inst: int, ref: IssueRef, paused: bool) -> str:
        word = "paused" if paused else "resumed"
        issue = await self.github.issue(inst, ref)
        if issue is not None and CONTROL_LABEL in issue.labels:
            await asyncio.to_thread(self.store.set_repo_paused, ref.repo, paused)
            self.signals.ready_changed.set()
            if paused:
                return f"{ref.repo} is paused: no new task starts until `/stoneforge resume`."
            return f"{ref.repo} is resumed."
        tasks = await self._targets(ref)
        if tasks is None:
            return NOT_A_TASK
        for task in tasks:
            await asyncio.to_thread(
                functools.partial(self.store.update_task, task.ref, paused=paused)
            )
        planned = await self.director.set_paused(ref, paused)
        self.signals.ready_changed.set()
        await self.views.refresh_views()
        what = "The plan" if planned else f"#{ref.number}"
        if paused:
            return f"{what} is {word}: no new job starts until `/stoneforge resume`."
        return f"{what} is {word}."

    async def _status(self, inst: int, ref: IssueRef) -> str:
        text = await self.director.status(inst, ref)
        if text is not None:
            return text
        task = await asyncio.to_thread(self.store.get_task, ref)
        return NOT_A_TASK if task is None else task_status(task)


def task_status(task: Task) -> str:
    """``/stoneforge status`` on a task: its state, attempt, pull request and spend."""
    state = task.state.value.replace("_", " ")
    if task.paused:
        state += " (paused)"
    rows = [
        ("state", state),
        ("attempt", str(task.attempt)),
        ("pull request", f"#{task.pr_number}" if task.pr_number else "none yet"),
        ("cost", format_cost(task.cost_usd or 0.0)),
        ("priority", f"p{task.priority}"),
    ]
    if task.detail:
        rows.append(("why", task.detail))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"**Stoneforge · #{task.number}**\n\n| | |\n| --- | --- |\n{table}\n"
