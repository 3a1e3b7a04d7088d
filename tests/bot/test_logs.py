"""Structured logs: JSON lines, bound context per asyncio task, secrets masked, exceptions."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from bot.logs import REDACTED, bind, configure_logging, current_context, redact

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJpc3MiOjEyMywiaWF0IjoxNzAwMDAwMDAwfQ"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)
# (secret as it appears, a piece of it that must never be written)
SECRETS = [
    ("ghs_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E7710c8"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrst"),
    ("gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "ABCDEFGHIJKLMNOP"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "11ABCDEFG0123456789"),
    ("v1.0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123"),
    (JWT, "hbGciOiJSUzI1NiIsInR5cCI6"),
    (PEM, "MIIEowIBAAKCAQEAu1SU1"),
    (PEM.split("-----END")[0], "MIIEowIBAAKCAQEAu1SU1"),  # cut off before its END line
    ("http://x-access-token:s3cr3t-value@127.0.0.1:9/octo/demo.git", "s3cr3t-value"),
    ("Authorization: Bearer runner-tok-123", "runner-tok-123"),
]


@pytest.fixture
def capture() -> Iterator[Callable[..., io.StringIO]]:
    """Configure logging into a StringIO; restore the root logger afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level

    def configure(level: str = "debug", *, json_format: bool = True) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(level, json_format=json_format, stream=stream)
        return stream

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_standard_fields(capture) -> None:
    stream = capture()
    log = logging.getLogger("bot.test")
    log.info("trigger_enqueued", extra={"kind": "sync", "attempt": 2})
    log.warning("merge_refused %s: %s", "octo/demo#5", "not mergeable")
    first, second = lines(stream)
    assert first["level"] == "info"
    assert first["logger"] == "bot.test"
    assert first["event"] == "trigger_enqueued"
    assert first["kind"] == "sync"
    assert first["attempt"] == 2
    assert second["level"] == "warning"
    assert second["event"] == "merge_refused octo/demo#5: not mergeable"
    ts = str(first["ts"])
    assert ts.endswith("Z")
    parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


def test_level_filters_and_reconfiguring_replaces_the_handler(capture) -> None:
    capture("debug")
    stream = capture("warning")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_stoneforge", False)]
    assert len(ours) == 1
    logging.getLogger("bot.test").info("hidden")
    logging.getLogger("bot.test").error("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_bound_context_is_added_and_restored(capture) -> None:
    stream = capture()
    log = logging.getLogger("bot.test")
    with bind(delivery_id="d-1", repo="octo/demo"):
        with bind(issue=5, repo="octo/other"):
            assert current_context() == {"delivery_id": "d-1", "repo": "octo/other", "issue": 5}
            log.info("inner", extra={"pr": 9})
        with bind(delivery_id=None):
            log.info("unbound")
        log.info("outer")
    log.info("none")
    inner, unbound, outer, none = lines(stream)
    assert (inner["delivery_id"], inner["repo"], inner["issue"], inner["pr"]) == (
        "d-1",
        "octo/other",
        5,
        9,
    )
    assert "delivery_id" not in unbound
    assert outer["repo"] == "octo/demo"
    assert "issue" not in outer
    assert "repo" not in none
    assert current_context() == {}


async def test_context_stays_separate_across_concurrent_tasks(capture) -> None:
    stream = capture()
    log = logging.getLogger("bot.test")
    started = asyncio.Event()

    async def handle(n: int) -> None:
        with bind(delivery_id=f"d-{n}", issue=n, worker=f"w{n % 3}"):
            await started.wait()  # every task is inside its bind before any logs
            for step in range(3):
                await asyncio.sleep(0)
                log.info("step", extra={"n": n, "step": step})

    with bind(repo="octo/demo"):
        tasks = [asyncio.create_task(handle(n)) for n in range(20)]
        await asyncio.sleep(0)
        started.set()
        await asyncio.gather(*tasks)
    records = lines(stream)
    assert len(records) == 60
    for record in records:
        n = record["n"]
        assert record["delivery_id"] == f"d-{n}"
        assert record["issue"] == n
        assert record["worker"] == f"w{n % 3}"
        assert record["repo"] == "octo/demo"  # inherited from the creating task
    assert current_context() == {}


@pytest.mark.parametrize(("secret", "piece"), SECRETS, ids=lambda v: v[:12])
def test_secrets_are_masked_everywhere(capture, secret: str, piece: str) -> None:
    stream = capture()
    log = logging.getLogger("bot.test")
    log.info(f"cloning with {secret} now")
    log.info("args %s", secret)
    log.info("extra", extra={"url": secret, "nested": {"headers": [secret]}})
    with bind(repo=secret):
        log.info("context")
    try:
        raise RuntimeError(f"push failed: {secret}")
    except RuntimeError:
        log.exception("exc")
    text = stream.getvalue()
    assert piece not in text
    records = lines(stream)  # still valid JSON after masking
    assert len(records) == 5
    assert "REDACTED" in str(records[0]["event"])
    assert "REDACTED" in str(records[2]["nested"])


def test_secret_named_fields_are_masked_whole_but_counts_are_kept(capture) -> None:
    stream = capture()
    logging.getLogger("bot.test").info(
        "job", extra={"token": "plain-value", "runner_token": "abc", "input_tokens": 5}
    )
    (record,) = lines(stream)
    assert record["token"] == REDACTED
    assert record["runner_token"] == REDACTED
    assert record["input_tokens"] == 5


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "merged octo/demo#5 at 0123456789abcdef0123456789abcdef01234567 (v1.2.3) in 3.2 s"
    assert redact(text) == text
    assert redact("http://127.0.0.1:8080/octo/demo.git") == "http://127.0.0.1:8080/octo/demo.git"


def test_exception_is_serialised(capture) -> None:
    stream = capture()
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("bot.test").exception("lookup_failed", extra={"repo": "octo/demo"})
    (record,) = lines(stream)
    assert record["level"] == "error"
    assert record["event"] == "lookup_failed"
    exc = str(record["exc"])
    assert exc.startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in exc


def test_reserved_names_in_extra_do_not_overwrite_fields(capture) -> None:
    stream = capture()
    logging.getLogger("bot.test").info("real", extra={"event": "fake", "level": "x"})
    (record,) = lines(stream)
    assert record["event"] == "real"
    assert record["level"] == "info"
    assert record["extra_event"] == "fake"
    assert record["extra_level"] == "x"


def test_text_format_for_terminals(capture) -> None:
    stream = capture(json_format=False)
    with bind(repo="octo/demo"):
        logging.getLogger("bot.test").info("hello %s", "ghs_16C7e42F292c6912E7710c838347Ae178B4a")
    line = stream.getvalue().strip()
    assert " INFO    bot.test hello ghs_[REDACTED]" in line
    assert line.endswith('repo="octo/demo"')
