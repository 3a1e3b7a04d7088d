"""Per-repository configuration: ``.github/stoneforge.yml`` on the default branch.

The file is versioned (``version: 1``), unknown keys are errors (a typo must not pass silently),
and every key has a sane default. ``parse_repo_config(text)`` returns a ``RepoConfig`` or a list
of ``ConfigError`` values (dotted key, human message, line) and never raises; the caller reports
the errors with ``render_config_errors`` and keeps the last valid configuration in force.

The checked-in JSON Schema ``schema/stoneforge.schema.json`` is ``config_schema()``; regenerate it
with ``python -m bot.core.config > schema/stoneforge.schema.json``. Every key is described in
``docs/configuration.md``.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.json_schema import JsonDict

CONFIG_PATH = ".github/stoneforge.yml"
DOCS_URL = "https://github.com/stoneforge/stoneforge-github/blob/main/docs/configuration.md"
SCHEMA_ID = (
    "https://raw.githubusercontent.com/stoneforge/stoneforge-github/main/"
    "schema/stoneforge.schema.json"
)
#: Hidden marker on the rendered error comment, so the bot can find and update its own comment.
CONFIG_ERROR_MARKER = "<!-- stoneforge:config-error -->"
#: Larger files are refused unread (GitHub's limit is 1 MB; a real config is a few hundred bytes).
MAX_CONFIG_BYTES = 64 * 1024
MAX_RENDERED_ERRORS = 25

AgentName = Literal["claude", "codex", "opencode", "gemini", "aider", "script", "command"]
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


class Timeouts(_Section):
    """Time limits for agent runs."""

    agent_minutes: int = Field(
        30, ge=1, le=1440, description="Wall-clock limit for one agent run, in minutes."
    )
    stall_minutes: int = Field(
        10,
        ge=1,
        le=1440,
        description="A running task without a heartbeat for this long is requeued.",
    )


class Budget(_Section):
    """Spending limits for agent runs (US dollars, as the agents report them)."""

    per_task_usd: float | None = Field(
        None, gt=0, description="Spending limit for one task in US dollars; null means none."
    )
    per_day_usd: float | None = Field(
        None, gt=0, description="Spending limit per day for this repository; null means none."
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


@dataclass(frozen=True)
class ConfigError:
    """One problem in the file. ``path`` is the dotted key (``""`` for the whole file)."""

    path: str
    message: str
    line: int | None = None  # 1-based line in the file, where known

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path or 'file'}{where}: {self.message}"


def parse_repo_config(text: str | None) -> RepoConfig | list[ConfigError]:
    """Parse and validate the file's text. Empty or missing text gives the defaults."""
    if text is None or not text.strip():
        return RepoConfig()
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_CONFIG_BYTES:
        return [ConfigError("", f"the file is {size} bytes; the limit is {MAX_CONFIG_BYTES}")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [_yaml_error(exc, text)]
    except RecursionError:
        return [ConfigError("", "invalid YAML: the file is nested too deeply")]
    if data is None:  # only comments
        return RepoConfig()
    if not isinstance(data, dict):
        return [
            ConfigError("", f"the file must be a mapping of keys (got {_describe(data)})", line=1)
        ]
    errors = _duplicate_keys(root, ())
    errors += _version_errors(data, root)
    try:
        config = RepoConfig.model_validate({**data, "version": 1})
    except ValidationError as exc:
        errors += [_from_pydantic(err, root) for err in exc.errors()]
    if errors:
        return sorted(errors, key=lambda e: (e.line or 0, e.path))
    return config


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the file (the golden copy is ``schema/stoneforge.schema.json``)."""
    schema = RepoConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "required": ["version"],  # the model defaults it, but a file must state it
    }


def render_config_errors(
    errors: Sequence[ConfigError], *, path: str = CONFIG_PATH, sha: str | None = None
) -> str:
    """Markdown for a comment or check run: each key, what is wrong, and what happens now."""
    at = f" at {_code(sha[:7])}" if sha else ""
    count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
    lines = [
        CONFIG_ERROR_MARKER,
        "### Stoneforge configuration is invalid",
        "",
        f"{_code(path)}{at} has {count}:",
        "",
    ]
    for error in errors[:MAX_RENDERED_ERRORS]:
        key = _code(error.path) if error.path else "the file"
        where = f" (line {error.line})" if error.line is not None else ""
        lines.append(f"- {key}{where}: {_escape_text(error.message)}")
    if len(errors) > MAX_RENDERED_ERRORS:
        lines.append(f"- ... and {len(errors) - MAX_RENDERED_ERRORS} more")
    lines += [
        "",
        "**The last valid configuration stays in force** (the defaults, if there never was one) "
        "until this file is fixed on the default branch.",
        "",
        f"Every key is described in the [configuration reference]({DOCS_URL}).",
    ]
    return "\n".join(lines) + "\n"


# --- YAML helpers -----------------------------------------------------------------------------


def _yaml_error(exc: yaml.YAMLError, text: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text[: exc.position].count("\n") + 1
    else:
        line = None
    return ConfigError("", message, line)


def _duplicate_keys(node: yaml.Node, loc: tuple[str | int, ...]) -> list[ConfigError]:
    errors: list[ConfigError] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name in seen:
                path = _dotted((*loc, name))
                line = key.start_mark.line + 1
                errors.append(ConfigError(path, "appears twice; only one may stay", line))
            if name is not None:
                seen.add(name)
            errors += _duplicate_keys(value, (*loc, name if name is not None else "?"))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            errors += _duplicate_keys(item, (*loc, index))
    return errors


def _find(root: yaml.Node | None, loc: Sequence[Any], *, key: bool = False) -> yaml.Node | None:
    """The node at ``loc`` (its key node when ``key``), else the deepest node found on the way."""
    node = root
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            match = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and _same(k, part)
                ),
                None,
            )
            if match is None:
                return node
            node = match[0] if (key and last) else match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


_YAML_BOOLS = {True: {"yes", "y", "on", "true"}, False: {"no", "n", "off", "false"}}


def _same(node: yaml.ScalarNode, part: Any) -> bool:
    if isinstance(part, bool):
        return str(node.value).lower() in _YAML_BOOLS[part]
    return bool(node.value == str(part))


def _line(root: yaml.Node | None, loc: Sequence[Any], *, key: bool = False) -> int | None:
    node = _find(root, loc, key=key)
    if isinstance(node, yaml.CollectionNode) and loc and not key:
        node = _find(root, loc, key=True)  # a block mapping starts at its first child: use the key
    return node.start_mark.line + 1 if node is not None else None


# --- turning validation errors into sentences ---------------------------------------------------


def _version_errors(data: dict[Any, Any], root: yaml.Node) -> list[ConfigError]:
    if "version" not in data:
        return [ConfigError("version", "is required: add `version: 1` as the first line")]
    value = data["version"]
    if type(value) is int and value == 1:
        return []
    return [
        ConfigError(
            "version",
            f"unsupported version {_code(_show(value))}; this Stoneforge reads `version: 1`",
            _line(root, ["version"]),
        )
    ]


_TYPE_WORDS = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
}
_SHOULD = re.compile(r"^(Input|String|List|Dictionary|Value) should (have|be)\b")


def _from_pydantic(err: Any, root: yaml.Node) -> ConfigError:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "invalid_key":  # a section's key that is not a string: loc ends in the key
        return _bad_key(loc[:-1], value, root)
    if loc and loc[-1] == "[key]":  # a label map's key: loc ends in (key, "[key]")
        return _bad_key(loc[:-2], value, root)
    path = _dotted(loc)
    if kind == "extra_forbidden":
        return ConfigError(path, _unknown_key(loc), _line(root, loc, key=True))
    line = _line(root, loc)
    if kind == "missing":
        return ConfigError(path, "is required", line)
    if value is None and kind in _TYPE_WORDS:
        return ConfigError(path, "has no value; remove the key to use the default", line)
    if kind in _TYPE_WORDS:
        message = f"must be {_TYPE_WORDS[kind]} (got {_describe(value)})"
        if isinstance(value, bool) and kind == "string_type":
            message += "; YAML reads yes/no/on/off/true/false as booleans, so quote the value"
        return ConfigError(path, message, line)
    message = str(err["msg"])
    if kind == "string_pattern_mismatch":
        return ConfigError(path, "must not be blank", line)
    if kind == "value_error":
        return ConfigError(path, message.removeprefix("Value error, "), line)
    message = _SHOULD.sub(lambda m: f"must {m.group(2)}", message)
    return ConfigError(path, f"{message} (got {_code(_show(value))})", line)


def _bad_key(parent: tuple[Any, ...], key: Any, root: yaml.Node) -> ConfigError:
    node = _find(root, (*parent, key), key=True)
    written = node.value if isinstance(node, yaml.ScalarNode) else _show(key)
    message = f"keys must be strings (got {_describe(key)})"
    if isinstance(key, bool):
        message += "; YAML reads yes/no/on/off/true/false as booleans, so quote the key"
    line = node.start_mark.line + 1 if node is not None else None
    return ConfigError(_dotted((*parent, written)), message, line)


def _unknown_key(loc: tuple[Any, ...]) -> str:
    name, parent = str(loc[-1]), loc[:-1]
    known = _known_keys(parent)
    if known is None:
        return "is not a known key"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {_code(_dotted((*parent, close[0])))}?"
    else:
        elsewhere = [p for p in _all_paths(_model_at(parent)) if p.rsplit(".", 1)[-1] == name]
        prefix = _dotted(parent) + "." if parent else ""
        hint = f"did you mean {_code(prefix + elsewhere[0])}?" if elsewhere else ""
    where = f"in {_code(_dotted(parent))}" if parent else "at the top level"
    listing = ", ".join(_code(k) for k in known)
    return " ".join(filter(None, ["is not a known key;", hint, f"known keys {where}: {listing}"]))


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) is Union:
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    current: Any = RepoConfig
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = _unwrap(field.annotation)
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _known_keys(loc: Sequence[Any]) -> list[str] | None:
    model = _model_at(loc)
    return list(model.model_fields) if model is not None else None


def _all_paths(model: type[BaseModel] | None, prefix: str = "") -> list[str]:
    """Dotted paths of the fields nested under ``model`` (sections only, not label maps)."""
    paths: list[str] = []
    for name, field in model.model_fields.items() if model else ():
        paths.append(prefix + name)
        inner = _unwrap(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths += _all_paths(inner, f"{prefix}{name}.")
    return paths


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        elif isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlevel = 2


def _show(value: Any) -> str:
    """A short YAML-flavoured rendering of a user's value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _repr.repr(value)


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}  # fmt: skip
    kind = kinds.get(type(value), type(value).__name__)
    return f"{kind} {_code(_show(value))}"


def _code(text: str) -> str:
    """``text`` as a markdown code span (no mentions, links or HTML inside), whatever it holds."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _escape_text(message: str) -> str:
    """Escape HTML in ``message`` outside its code spans (YAML messages say ``<block end>``)."""
    parts = re.split(r"(`+)(.*?)(\1)", message)
    out: list[str] = []
    for index in range(0, len(parts), 4):
        out.append(parts[index].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        if index + 3 < len(parts):
            out.append("".join(parts[index + 1 : index + 4]))
    return "".join(out)


if __name__ == "__main__":
    print(json.dumps(config_schema(), indent=2))
