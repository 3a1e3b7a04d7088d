"""The shared redactor: secret shapes, exact secrets, JSON-escaped text, ordinary text kept."""

from __future__ import annotations

import json

import pytest

from bot.core.redact import REDACTED, redact

KEYS = {
    "anthropic": "sk-ant-api03-" + "a1B2c3D4" * 10,
    "openai": "sk-proj-" + "Q9w8E7r6" * 6,
    "github": "ghs_" + "16C7e42F292c6912E7710c838347Ae178B4a",
    "fine-grained": "github_pat_" + "11ABCDEFG0" * 5,
    "google": "AIza" + "SyA-1234567890abcdefghijklmnopqrstu",
    "aws": "AKIA" + "IOSFODNN7EXAMPLE",
    "slack": "xoxb-" + "123456789012-abcdefABCDEF",
    "jwt": "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJl",
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_key_shapes_are_masked_in_plain_text_and_inside_escaped_json(name: str) -> None:
    key = KEYS[name]
    assert key not in redact(f"using {key} now")
    line = json.dumps({"output": f"env:\n{key}\tdone"})  # the key follows a "\n" escape
    masked = redact(line)
    assert key not in masked
    assert REDACTED in masked
    assert json.loads(masked)["output"].startswith("env:\n")


def test_exact_secrets_are_masked_but_short_ones_are_ignored() -> None:
    text = "token=plain-job-token-value and id=abc"
    assert redact(text, ["plain-job-token-value", "abc"]) == f"token={REDACTED} and id=abc"


def test_secret_named_variables_are_masked_in_shells_and_json() -> None:
    assert redact("export ANTHROPIC_API_KEY=verysecretvalue1") == (
        f"export ANTHROPIC_API_KEY={REDACTED}"
    )
    masked = redact(json.dumps({"cmd": 'echo "GH_TOKEN: "hunter2hunter2"'}))
    assert "hunter2hunter2" not in masked
    json.loads(masked)


def test_ordinary_agent_output_is_left_alone() -> None:
    text = (
        '{"type": "result", "input_tokens": 1200, "output_tokens": 34} MAX_TOKENS=4096 '
        "task-scheduler-refactoring-branch merged 0123456789abcdef0123456789abcdef01234567 "
        "disk-usage-report-for-yesterday v1.2.3 https://github.com/octo/demo.git"
    )
    assert redact(text) == text
