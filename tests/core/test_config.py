"""`.github/stoneforge.yml`: defaults, actionable errors and the golden schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.core.config import (
    CONFIG_ERROR_MARKER,
    MAX_CONFIG_BYTES,
    AgentChoice,
    ConfigError,
    RepoConfig,
    config_schema,
    parse_repo_config,
    render_config_errors,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "stoneforge.schema.json"
FIXTURES = ROOT / "tests" / "fixtures" / "config"
DOCS = ROOT / "docs" / "configuration.md"
REGENERATE = "python -m bot.core.config > schema/stoneforge.schema.json"


def errors_of(text: str) -> list[ConfigError]:
    result = parse_repo_config(text)
    assert isinstance(result, list), f"expected errors, got {result!r}"
    assert result, "an error list is never empty"
    return result


def only_error(text: str) -> ConfigError:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


def config_of(text: str) -> RepoConfig:
    result = parse_repo_config(text)
    assert isinstance(result, RepoConfig), [str(e) for e in result]
    return result


# --- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   \n\t\n", "# only a comment\n"])
def test_missing_or_empty_file_gives_defaults(text: str | None) -> None:
    assert parse_repo_config(text) == RepoConfig()


def test_defaults() -> None:
    config = config_of("version: 1\n")
    assert config == RepoConfig()
    assert config.trigger_label == "agent-ready"
    assert config.agent == AgentChoice(name="claude", model=None)
    assert config.agents_by_label == {}
    assert (config.concurrency.per_repo, config.concurrency.per_installation) == (3, None)
    assert config.merge.method == "squash"
    assert config.merge.required_checks == []
    assert config.merge.delete_branch is True
    assert (config.timeouts.agent_minutes, config.timeouts.stall_minutes) == (30, 10)
    assert (config.budget.per_task_usd, config.budget.per_day_usd) == (None, None)
    assert (config.commands.setup, config.commands.test) == (None, None)
    assert config.bots.allow == []
    assert config.backend == "runner"
    assert config.priority_labels == {f"priority: p{n}": n for n in range(5)}


def test_config_is_frozen_and_defaults_are_not_shared() -> None:
    config = RepoConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.trigger_label = "x"  # type: ignore[misc]
    config.merge.required_checks.append("sneaky")
    assert RepoConfig().merge.required_checks == []


# --- a full valid file ------------------------------------------------------------------------


def test_full_file() -> None:
    config = config_of((FIXTURES / "good-full.yml").read_text())
    assert config.trigger_label == "stoneforge"
    assert config.agent == AgentChoice(name="codex", model="gpt-5-codex")
    assert config.agents_by_label["area: docs"] == AgentChoice(name="aider")
    assert config.concurrency.per_repo == 5
    assert config.concurrency.per_installation == 20
    assert config.merge.method == "rebase"
    assert config.merge.required_checks == ["lint", "test (3.11)"]
    assert config.merge.delete_branch is False
    assert config.timeouts.agent_minutes == 90
    assert config.timeouts.stall_minutes == 15
    assert config.budget.per_task_usd == 2.5
    assert config.budget.per_day_usd == 50.0  # an integer is a fine amount of dollars
    assert config.commands.setup == "pip install -e '.[dev]'"
    assert config.commands.test == "pytest -q"
    assert config.bots.allow == ["renovate[bot]", "dependabot[bot]"]
    assert config.backend == "actions"
    assert config.priority_labels == {"urgent": 0, "nice to have": 4}  # replaces the default map


# --- each class of error ----------------------------------------------------------------------


def test_yaml_syntax_error_has_line() -> None:
    error = only_error("version: 1\nmerge:\n  method: squash\n bad: [\n")
    assert error.path == ""
    assert error.message.startswith("invalid YAML: ")
    assert error.line is not None
    assert error.line >= 4


def test_tab_indentation_is_a_syntax_error_on_its_line() -> None:
    error = only_error("version: 1\n\tmerge: {}\n")
    assert (error.path, error.line) == ("", 2)
    assert "\\t" in error.message


def test_forbidden_character_is_reported_with_line() -> None:
    error = only_error("version: 1\ntrigger_label: a\x00b\n")
    assert (error.path, error.line) == ("", 2)
    assert "invalid YAML" in error.message


def test_several_documents_are_refused() -> None:
    assert only_error("version: 1\n---\nversion: 1\n").path == ""


def test_deep_nesting_does_not_crash() -> None:
    error = only_error("version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in error.message


def test_oversized_file_is_refused_unread() -> None:
    error = only_error("version: 1\n" + "#" * MAX_CONFIG_BYTES)
    assert error.path == ""
    assert str(MAX_CONFIG_BYTES) in error.message


@pytest.mark.parametrize("text", ["- version: 1\n", "just words\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    error = only_error(text)
    assert (error.path, error.line) == ("", 1)
    assert "must be a mapping" in error.message


def test_missing_version() -> None:
    error = only_error("trigger_label: go\n")
    assert (error.path, error.line) == ("version", None)
    assert error.message.startswith("is required")
    assert "`version: 1`" in error.message


@pytest.mark.parametrize("value", ["2", "'1'", "true", "1.5", "null"])
def test_wrong_version(value: str) -> None:
    error = only_error(f"# a comment\nversion: {value}\n")
    assert (error.path, error.line) == ("version", 2)
    assert "unsupported version" in error.message


def test_unknown_top_level_key_suggests_closest() -> None:
    error = only_error("version: 1\ntriger_label: go\n")
    assert (error.path, error.line) == ("triger_label", 2)
    assert "did you mean `trigger_label`?" in error.message


def test_unknown_top_level_key_names_its_section() -> None:
    error = only_error("version: 1\nagent_minutes: 5\n")
    assert "did you mean `timeouts.agent_minutes`?" in error.message


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    error = only_error("version: 1\nmerge:\n  zzzz: 1\n")
    assert (error.path, error.line) == ("merge.zzzz", 3)
    assert "did you mean" not in error.message
    assert "`method`, `required_checks`, `delete_branch`" in error.message


def test_unknown_nested_key() -> None:
    error = only_error("version: 1\nmerge:\n  method: squash\n  methd: rebase\n")
    assert (error.path, error.line) == ("merge.methd", 4)
    assert "did you mean `merge.method`?" in error.message


def test_unknown_key_inside_label_map_entry() -> None:
    error = only_error("version: 1\nagents_by_label:\n  bug:\n    nam: codex\n")
    assert (error.path, error.line) == ("agents_by_label.bug.nam", 4)
    assert "did you mean `agents_by_label.bug.name`?" in error.message


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("concurrency:\n  per_repo: three", "concurrency.per_repo", "must be a whole number"),
        ("concurrency:\n  per_repo: '3'", "concurrency.per_repo", "must be a whole number"),
        ("merge:\n  delete_branch: 'no'", "merge.delete_branch", "must be true or false"),
        ("merge:\n  required_checks: lint", "merge.required_checks", "must be a list"),
        ("merge: squash", "merge", "must be a mapping"),
        ("budget:\n  per_day_usd: lots", "budget.per_day_usd", "must be a number"),
        ("trigger_label: 7", "trigger_label", "must be a string"),
    ],
)
def test_wrong_type(text: str, path: str, words: str) -> None:
    error = only_error(f"version: 1\n{text}\n")
    assert error.path == path
    assert words in error.message
    assert "(got " in error.message


def test_unquoted_yes_explains_yaml_booleans() -> None:
    error = only_error("version: 1\ntrigger_label: yes\n")
    assert (error.path, error.line) == ("trigger_label", 2)
    assert "quote the value" in error.message


def test_boolean_key_is_named_as_written() -> None:
    error = only_error("version: 1\nagents_by_label:\n  no: {name: codex}\n")
    assert (error.path, error.line) == ("agents_by_label.no", 3)
    assert "quote the key" in error.message


def test_empty_section_says_to_remove_it() -> None:
    error = only_error("version: 1\nmerge:\n")
    assert error.path == "merge"
    assert "remove the key" in error.message


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("concurrency:\n  per_repo: 0", "concurrency.per_repo", "greater than or equal to 1"),
        ("concurrency:\n  per_repo: 101", "concurrency.per_repo", "less than or equal to 100"),
        ("timeouts:\n  agent_minutes: 1441", "timeouts.agent_minutes", "less than or equal"),
        ("budget:\n  per_task_usd: 0", "budget.per_task_usd", "greater than 0"),
        ("priority_labels:\n  urgent: 5", "priority_labels.urgent", "less than or equal to 4"),
        ("trigger_label: " + "x" * 51, "trigger_label", "at most 50 characters"),
        ("merge:\n  required_checks: [ci, ' ']", "merge.required_checks[1]", "must not be blank"),
        ("agent:\n  model: ''", "agent.model", "at least 1 character"),
    ],
)
def test_out_of_range(text: str, path: str, words: str) -> None:
    error = only_error(f"version: 1\n{text}\n")
    assert error.path == path
    assert words in error.message


def test_bad_agent_name() -> None:
    error = only_error("version: 1\nagent:\n  name: gpt-4\n")
    assert (error.path, error.line) == ("agent.name", 3)
    assert "'claude'" in error.message
    assert "'command'" in error.message
    assert "`'gpt-4'`" in error.message


def test_labels_differing_only_in_case_are_refused() -> None:
    error = only_error("version: 1\nagents_by_label:\n  Bug: {name: codex}\n  bug: {name: aider}\n")
    assert (error.path, error.line) == ("agents_by_label", 2)
    assert "differ only in case" in error.message


def test_label_with_spaces_is_quoted_in_path() -> None:
    error = only_error("version: 1\npriority_labels:\n  'priority: p0': 9\n")
    assert error.path == 'priority_labels["priority: p0"]'
    assert error.line == 3


def test_duplicate_key_is_an_error() -> None:
    error = only_error("version: 1\nmerge:\n  method: squash\n  method: rebase\n")
    assert (error.path, error.line) == ("merge.method", 4)
    assert "twice" in error.message


def test_all_errors_are_reported_in_line_order() -> None:
    text = "version: 1\nbackend: cloud\nmerge:\n  methd: x\nconcurrency:\n  per_repo: 0\n"
    errors = errors_of(text)
    assert [(e.path, e.line) for e in errors] == [
        ("backend", 2),
        ("merge.methd", 4),
        ("concurrency.per_repo", 6),
    ]


def test_missing_version_is_reported_with_other_errors() -> None:
    paths = [e.path for e in errors_of("backend: cloud\n")]
    assert paths == ["version", "backend"]


def test_error_str_is_readable() -> None:
    assert str(ConfigError("merge.method", "must be x", 4)) == "merge.method (line 4): must be x"
    assert str(ConfigError("", "invalid YAML")) == "file: invalid YAML"


# --- agent and priority by label --------------------------------------------------------------


AGENTS = """\
version: 1
agent: {name: claude}
agents_by_label:
  frontend: {name: codex, model: gpt-5}
  docs: {name: aider}
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([], AgentChoice(name="claude")),
        (["agent-ready", "backend"], AgentChoice(name="claude")),
        (["docs"], AgentChoice(name="aider")),
        (["frontend", "docs"], AgentChoice(name="codex", model="gpt-5")),
        (["docs", "frontend"], AgentChoice(name="aider")),  # issue label order, not file order
        (["FrontEnd"], AgentChoice(name="codex", model="gpt-5")),  # GitHub labels ignore case
    ],
)
def test_agent_for(labels: list[str], expected: AgentChoice) -> None:
    assert config_of(AGENTS).agent_for(labels) == expected


def test_priority_for() -> None:
    config = RepoConfig()
    assert config.priority_for(["bug"]) is None
    assert config.priority_for(["priority: p3", "bug"]) == 3
    assert config.priority_for(["priority: p3", "Priority: P1"]) == 1


def test_runs_on_for_unions_repository_and_label_runner_labels() -> None:
    assert RepoConfig().runs_on_for(["needs-gpu"]) == ()
    config = parse_repo_config(
        "version: 1\nruns_on: [Linux]\nruns_on_by_label:\n  Needs-GPU: [gpu, cuda12]\n"
        "  big: [linux, large]\n"
    )
    assert isinstance(config, RepoConfig)
    assert config.runs_on_for(["bug"]) == ("linux",)
    assert config.runs_on_for(["needs-gpu", "BIG"]) == ("cuda12", "gpu", "large", "linux")
    errors = parse_repo_config("version: 1\nruns_on: linux\n")
    assert isinstance(errors, list)
    assert [e.path for e in errors] == ["runs_on"]


# --- rendering --------------------------------------------------------------------------------


def test_render_names_key_line_reason_and_fallback() -> None:
    errors = errors_of("version: 1\nmerge:\n  method: fast\n")
    text = render_config_errors(errors, sha="0123456789abcdef")
    assert text.startswith(CONFIG_ERROR_MARKER + "\n")
    assert "`.github/stoneforge.yml` at `0123456` has 1 problem:" in text
    assert "- `merge.method` (line 3): must be 'squash', 'merge' or 'rebase'" in text
    assert "last valid configuration stays in force" in text


def test_render_file_level_error_and_plural() -> None:
    errors = [ConfigError("", "invalid YAML: expected '<block end>'", 7), ConfigError("a", "b")]
    text = render_config_errors(errors, path="other.yml")
    assert "`other.yml` has 2 problems:" in text
    assert "- the file (line 7): invalid YAML: expected '&lt;block end&gt;'" in text
    assert "- `a`: b" in text


def test_render_keeps_user_text_inside_code_spans() -> None:
    errors = errors_of("version: 1\nagent:\n  name: '`@everyone <img src=x>'\n")
    text = render_config_errors(errors)
    line = next(x for x in text.splitlines() if x.startswith("- `agent.name`"))
    assert line.endswith("(got ``'`@everyone <img src=x>'``)")  # a double-backtick code span


def test_render_caps_long_lists() -> None:
    errors = [ConfigError(f"k{n}", "bad", n) for n in range(40)]
    text = render_config_errors(errors)
    assert "`k24`" in text
    assert "`k25`" not in text
    assert "and 15 more" in text


# --- the JSON Schema --------------------------------------------------------------------------


def test_golden_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == config_schema(), (
        f"schema/stoneforge.schema.json is stale; regenerate it with: {REGENERATE}"
    )


def test_schema_is_valid_and_requires_version() -> None:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["version"]
    assert schema["additionalProperties"] is False


def test_module_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot.core.config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert json.loads(out) == config_schema()


def expectation(text: str) -> tuple[str, int | None]:
    match = re.match(r"# expect: path=(\S*) line=(\d+|none)\n", text)
    assert match, "a bad fixture starts with '# expect: path=<dotted key> line=<n or none>'"
    line = match.group(2)
    return match.group(1), None if line == "none" else int(line)


def schema_errors(text: str) -> list[str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"YAML: {exc}"]
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    return [e.message for e in validator.iter_errors(data)]


GOOD = sorted(FIXTURES.glob("good-*.yml"))
BAD = sorted(FIXTURES.glob("bad-*.yml"))


def test_fixtures_exist() -> None:
    assert len(GOOD) >= 3
    assert len(BAD) >= 9


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_good_fixture_passes_schema_and_parser(path: Path) -> None:
    text = path.read_text()
    assert schema_errors(text) == []
    config_of(text)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_fixture_fails_schema_and_parser(path: Path) -> None:
    text = path.read_text()
    assert schema_errors(text) != []
    expected_path, expected_line = expectation(text)
    assert [(e.path, e.line) for e in errors_of(text)] == [(expected_path, expected_line)]


# --- the documentation ------------------------------------------------------------------------


def documented_example() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    full = [b for b in blocks if "priority_labels" in b]
    assert len(full) == 1, "docs/configuration.md has one full example file"
    return full[0]


def test_docs_example_is_valid() -> None:
    text = documented_example()
    assert schema_errors(text) == []
    config_of(text)


def leaf_paths(schema: dict, node: dict, prefix: str = "") -> list[str]:
    paths = []
    for name, prop in node["properties"].items():
        paths.append(prefix + name)
        ref = prop.get("$ref")
        if ref:
            target = schema["$defs"][ref.rsplit("/", 1)[-1]]
            if "properties" in target and name != "agent":
                paths += leaf_paths(schema, target, f"{prefix}{name}.")
    return paths


def test_docs_describe_every_key() -> None:
    schema = config_schema()
    docs = DOCS.read_text()
    missing = [p for p in leaf_paths(schema, schema) if f"`{p}`" not in docs]
    assert missing == [], f"docs/configuration.md does not describe: {missing}"
    assert "`agent.name`" in docs
    assert "`agent.model`" in docs


def test_the_agent_to_run_is_the_chosen_one_then_the_fallback_then_none() -> None:
    plain = RepoConfig()
    assert plain.agent_to_run("claude", set()) == "claude"
    assert plain.agent_to_run("claude", {"claude"}) is None  # no fallback: the task waits
    backed = RepoConfig(fallback_agent=AgentChoice(name="codex"))
    assert backed.agent_to_run("claude", {"gemini"}) == "claude"
    assert backed.agent_to_run("claude", {"claude"}) == "codex"
    assert backed.agent_to_run("claude", {"claude", "codex"}) is None
