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

import json
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from bot.core.config_errors import (
    ConfigError,
    code,
    describe,
    duplicate_keys,
    escape_text,
    from_pydantic,
    version_errors,
    yaml_error,
)
from bot.core.config_keys import (
    DEFAULT_PRIORITY_LABELS,
    AgentChoice,
    AgentName,
    AgentReview,
    Budget,
    Commands,
    Concurrency,
    MergeConfig,
    RepoConfig,
    Scheduling,
    Steward,
    Timeouts,
)

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

__all__ = [
    "CONFIG_ERROR_MARKER",
    "CONFIG_PATH",
    "DEFAULT_PRIORITY_LABELS",
    "MAX_CONFIG_BYTES",
    "AgentChoice",
    "AgentName",
    "AgentReview",
    "Budget",
    "Commands",
    "Concurrency",
    "ConfigError",
    "MergeConfig",
    "RepoConfig",
    "Scheduling",
    "Steward",
    "Timeouts",
    "config_schema",
    "parse_repo_config",
    "render_config_errors",
]


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
        return [yaml_error(exc, text)]
    except RecursionError:
        return [ConfigError("", "invalid YAML: the file is nested too deeply")]
    if data is None:  # only comments
        return RepoConfig()
    if not isinstance(data, dict):
        return [
            ConfigError("", f"the file must be a mapping of keys (got {describe(data)})", line=1)
        ]
    errors = duplicate_keys(root, ())
    errors += version_errors(data, root)
    try:
        config = RepoConfig.model_validate({**data, "version": 1})
    except ValidationError as exc:
        errors += [from_pydantic(err, root) for err in exc.errors()]
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
    at = f" at {code(sha[:7])}" if sha else ""
    count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
    lines = [
        CONFIG_ERROR_MARKER,
        "### Stoneforge configuration is invalid",
        "",
        f"{code(path)}{at} has {count}:",
        "",
    ]
    for error in errors[:MAX_RENDERED_ERRORS]:
        key = code(error.path) if error.path else "the file"
        where = f" (line {error.line})" if error.line is not None else ""
        lines.append(f"- {key}{where}: {escape_text(error.message)}")
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


if __name__ == "__main__":
    print(json.dumps(config_schema(), indent=2))
