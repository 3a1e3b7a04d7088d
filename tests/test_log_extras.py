"""Every ``extra=`` given to a log call names no attribute of ``logging.LogRecord``.

``logging`` raises ``KeyError("Attempt to overwrite 'created' in LogRecord")`` for such a key,
but only when the record is made, i.e. when the level is enabled: tests run at WARNING and never
see it, while a bot started with ``--log-level info`` crashed in the director's filing on it.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESERVED = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {
    "message",
    "asctime",
}


def extra_keys() -> list[tuple[str, int, str]]:
    found = []
    for package in ("bot", "runner", "action", "fakehub", "demo", "stoneforge"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for kw in node.keywords:
                    if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                        for key in kw.value.keys:
                            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                                found.append((str(path.relative_to(ROOT)), node.lineno, key.value))
    return found


def test_log_extras_never_overwrite_a_log_record_attribute() -> None:
    keys = extra_keys()
    assert len(keys) > 20  # the scan finds the bot's log calls
    clashes = [(path, line, key) for path, line, key in keys if key in RESERVED]
    assert clashes == []


def test_the_guard_knows_the_clash_that_crashed_the_bot() -> None:
    assert "created" in RESERVED
    assert "name" in RESERVED
    assert "repo" not in RESERVED
