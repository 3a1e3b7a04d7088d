"""The keys of ``.github/stoneforge.yml``: one frozen pydantic model per section.

Strict types (YAML's ``"3"`` stays a string, ``yes`` a boolean), unknown keys forbidden, and a
description on every key: ``bot.core.config.config_schema()`` publishes them as the JSON Schema.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

AgentName = Literal[
    "claude", "codex", "opencode", "gemini", "aider", "copilot", "script", "command"
]
#: A string with at least one non-space character.
Text = Annotated[str, Field(min_length=1, pattern=r"\S")]
#: An issue label name (GitHub allows 50 characters); matched case-insensitively, as GitHub does.
Label = Annotated[str, Field(min_length=1, max_length=50, pattern=r"\S")]
#: A label as a mapping key. Pydantic would turn a key pattern into ``patternProperties``, so
#: blank keys are refused by a validator and by ``_LABEL_KEYS`` in the schema.
LabelKey = Annotated[str, Field(min_length=1, max_length=50)]
_LABEL_KEYS: JsonDict = {"propertyNames": {"minLength": 1, "maxLength": 50, "pattern": r"\S"}}
Priority = Annotated[int, Field(ge=0, le=4)]


class _Section(BaseModel):
    # strict: YAML's "3" stays a string and `yes` stays a boolean, as the JSON Schema says.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AgentChoice(_Section):
    """Which coding agent works on a task, and optionally which model it uses."""

    name: AgentName = Field("claude", description="The coding agent to run.")
    model: Text | None = Field(
        None, description="Model passed to the agent; null uses the agent's default."
    )


class Concurrency(_Section):
    """How many tasks run at once."""

    per_repo: int = Field(3, ge=1, le=100, description="Tasks running at once in this repository.")
    per_installation: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Cap across all repositories of the installation; null means no extra cap.",
    )


class MergeConfig(_Section):
    """How the steward merges a task's pull request."""

    method: Literal["squash", "merge", "rebase"] = Field(
        "squash", description="How pull requests are merged."
    )
    required_checks: list[Text] = Field(
        [], description="Check names that must succeed, beyond branch protection's own."
    )
    delete_branch: bool = Field(True, description="Delete the task branch after merging.")
    mode: Literal["serial", "speculative"] = Field(
        "serial",
        description="serial: one pull request at a time, brought up to date, tested, merged. "
        "speculative: up to `speculation` pull requests at the front of the queue are tested "
        "together, each merged on top of the ones ahead, and land as tested.",
    )
    speculation: int = Field(
        4, ge=1, le=16, description="Pull requests tested at once in speculative mode."
    )


class Timeouts(_Section):
    """Time limits for agent runs."""

    agent_minutes: int = Field(
        30, ge=1, le=1440, description="Wall-clock limit for one agent run, in minutes."
    )
    stall_minutes: int = Field(
        10,
        ge=1,
        le=1440,
        description=(
            "A running task without a heartbeat for this long is requeued; an agent silent"
            " this long is stopped and nudged once, and silent again goes to a person."
        ),
    )


class Budget(_Section):
    """Spending limits for agent runs (US dollars, as the agents report them)."""

    per_task_usd: float | None = Field(
        None, gt=0, description="Spending limit for one task in US dollars; null means none."
    )
    per_day_usd: float | None = Field(
        None, gt=0, description="Spending limit per day for this repository; null means none."
    )
    per_plan_usd: float | None = Field(
        None,
        gt=0,
        description="Spending limit for one director's plan (its plan job and all its tasks) "
        "in US dollars; the plan is paused when reached; null means none.",
    )


class Commands(_Section):
    """Repository commands for the runner and the agent."""

    setup: Text | None = Field(
        None, description="Shell command run in a fresh worktree before the agent."
    )
    test: Text | None = Field(None, description="Shell command the agent must make pass.")


class Bots(_Section):
    """Other bots whose actions are honoured (bots are ignored by default)."""

    allow: list[Text] = Field(
        [], description="Bot logins (e.g. renovate[bot]) whose labels and commands are honoured."
    )


class Scheduling(_Section):
    """How ready tasks are ordered when they are handed out."""

    file_aware: bool = Field(
        True,
        description="Run a task whose expected files overlap those of a running task only "
        "when no other ready task can keep the workers busy (they would likely conflict at "
        "merge); false ignores the files.",
    )
    dispatch: Literal["after_merge", "stacked"] = Field(
        "after_merge",
        description="When a task blocked by another task starts: `after_merge`, once its "
        "blockers merged; `stacked`, as soon as its one unmerged blocker's agent has pushed "
        "(that blocker in review), on top of the blocker's branch, with its pull request "
        "based on that branch and retargeted to the base when the blocker merges.",
    )
    order: Literal["critical_path", "fifo"] = Field(
        "critical_path",
        description="Order of ready tasks: `critical_path`, by priority, then the work "
        "waiting behind each, then age; `fifo`, by age alone (a baseline to compare with).",
    )


class Steward(_Section):
    """How the steward keeps people told about pull requests it holds back."""

    wait_timeout_minutes: float = Field(
        120,
        gt=0,
        le=10080,
        description="A pull request waiting this long for the same thing (a check, a blocker, "
        "a review, ...) gets one comment saying what it waits for.",
    )
    fix_attempts: int = Field(
        2,
        ge=0,
        le=10,
        description="Rounds an agent gets to fix a required check that stays red after its "
        "re-run (it is given the check's output) before the task fails for a human.",
    )


class AgentReview(_Section):
    """Review by an agent: before the steward merges an agent's pull request, a review agent
    reads its diff against the issue and posts a pull request review as the App."""

    agent: AgentName = Field(description="The agent that reviews (as for `agent.name`).")
    model: Text | None = Field(
        None, description="Model passed to the review agent; null uses the agent's default."
    )
    required: bool = Field(
        False,
        description="True: never merge without the review agent's approval of the current "
        "head (or a person's later approval); false: a review the agent could not give does "
        "not hold the merge back.",
    )
    max_rounds: int = Field(
        2,
        ge=1,
        le=10,
        description="Reviews of a task's pull request that may request changes; the last "
        "round's request for changes fails the task for a human, quoting the review.",
    )


DEFAULT_PRIORITY_LABELS: dict[str, int] = {f"priority: p{n}": n for n in range(5)}


class RepoConfig(_Section):
    """The parsed ``.github/stoneforge.yml``. ``RepoConfig()`` is the configuration by default."""

    model_config = ConfigDict(
        title="Stoneforge repository configuration",
        json_schema_extra={"description": "The file .github/stoneforge.yml on the default branch."},
    )

    version: Literal[1] = Field(1, description="Format version; must be 1.")
    trigger_label: Label = Field(
        "agent-ready", description="Label that hands an issue to Stoneforge."
    )
    agent: AgentChoice = Field(AgentChoice(), description="The agent used by default.")
    agents_by_label: dict[LabelKey, AgentChoice] = Field(
        {},
        json_schema_extra=_LABEL_KEYS,
        description="Issue label -> agent override; the first of the issue's labels that "
        "appears here wins.",
    )
    concurrency: Concurrency = Field(Concurrency())
    merge: MergeConfig = Field(MergeConfig())
    timeouts: Timeouts = Field(Timeouts())
    budget: Budget = Field(Budget())
    commands: Commands = Field(Commands())
    bots: Bots = Field(Bots())
    scheduling: Scheduling = Field(Scheduling())
    steward: Steward = Field(Steward())
    review: AgentReview | None = Field(
        None, description="Review by an agent before merging; absent or null: none."
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Agent attempts per task (handoffs included) before a human is asked.",
    )
    fallback_agent: AgentChoice | None = Field(
        None, description="Agent that takes a task while the chosen one is rate limited."
    )
    backend: Literal["runner", "actions"] = Field(
        "runner",
        description="Where agents run: self-hosted Stoneforge runners, or GitHub Actions.",
    )
    runs_on: list[Label] = Field(
        [],
        description="Runner labels a runner must carry to take this repository's tasks "
        "(each registered runner has labels; with `backend: actions` they become the "
        "workflow's `runs_on` input).",
    )
    runs_on_by_label: dict[LabelKey, list[Label]] = Field(
        {},
        json_schema_extra=_LABEL_KEYS,
        description="Issue label -> more runner labels that issue's task needs "
        "(e.g. `needs-gpu: [gpu]`); added to `runs_on`.",
    )
    priority_labels: dict[LabelKey, Priority] = Field(
        DEFAULT_PRIORITY_LABELS,
        json_schema_extra=_LABEL_KEYS,
        description="Issue label -> priority, 0 most urgent .. 4. Replaces the default map.",
    )

    @field_validator("agents_by_label", "priority_labels", "runs_on_by_label")
    @classmethod
    def _labels_distinct(cls, value: dict[str, Any]) -> dict[str, Any]:
        seen: dict[str, str] = {}
        for label in value:
            if not label.strip():
                raise ValueError("label names must not be blank")
            other = seen.setdefault(label.casefold(), label)
            if other != label:
                raise ValueError(
                    f"labels {other!r} and {label!r} differ only in case; "
                    "GitHub treats them as the same label"
                )
        return value

    def agent_to_run(self, chosen: str, blocked: Collection[str]) -> str | None:
        """The agent to run a task that chose ``chosen`` with: that one unless it is
        ``blocked`` (the runner cannot run it now, or a rate limit holds the task from it),
        then ``fallback_agent`` unless that is blocked too; None: the task waits."""
        if chosen not in blocked:
            return chosen
        if self.fallback_agent is not None and self.fallback_agent.name not in blocked:
            return self.fallback_agent.name
        return None

    def agent_for(self, labels: Sequence[str]) -> AgentChoice:
        """The agent for an issue with ``labels`` (in the issue's order): first override wins."""
        overrides = {label.casefold(): choice for label, choice in self.agents_by_label.items()}
        for label in labels:
            choice = overrides.get(label.casefold())
            if choice is not None:
                return choice
        return self.agent

    def runs_on_for(self, labels: Sequence[str]) -> tuple[str, ...]:
        """Runner labels a task for an issue with ``labels`` needs: sorted, distinct, lowercase.

        Runner labels match case-insensitively, as GitHub's ``runs-on`` does.
        """
        wanted = {label.casefold() for label in self.runs_on}
        extra = {label.casefold(): more for label, more in self.runs_on_by_label.items()}
        for label in labels:
            wanted.update(m.casefold() for m in extra.get(label.casefold(), ()))
        return tuple(sorted(wanted))

    def priority_for(self, labels: Sequence[str]) -> int | None:
        """The most urgent priority among ``labels``, or None when no priority label is set."""
        table = {label.casefold(): n for label, n in self.priority_labels.items()}
        found = [table[label.casefold()] for label in labels if label.casefold() in table]
        return min(found, default=None)
