"""A try's transcript leaves the runner redacted and capped; a failed upload fails nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner import transcripts
from runner.agents.base import Outcome, Result, Usage

JOB_TOKEN = "fakehub-installation-token-0123456789abcdef"
RUNNER_TOKEN = "sfrun_runner-token-abcdefghijklmnop"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9" * 30
GITHUB_TOKEN = "ghs_" + "A1b2C3d4" * 5


def jsonl(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def write_try(tmp_path: Path, stdout: str, stderr: str = "") -> Path:
    logs = tmp_path / "logs" / "octo-app-5-1-try1"
    logs.mkdir(parents=True)
    (logs / "stdout.jsonl").write_text(stdout)
    (logs / "stderr.log").write_text(stderr)
    return logs


def leaked(text: str) -> list[str]:
    return [s for s in (JOB_TOKEN, RUNNER_TOKEN, ANTHROPIC_KEY, GITHUB_TOKEN) if s in text]


def test_collect_masks_the_job_token_and_api_keys_in_stdout_and_stderr(tmp_path: Path) -> None:
    stdout = jsonl(
        {"type": "text", "text": f"git push https://x-access-token:{JOB_TOKEN}@host/o/r.git"},
        {"type": "tool", "input": f"export ANTHROPIC_API_KEY={ANTHROPIC_KEY}\ncat .env"},
        {"type": "tool_result", "output": f"GH_TOKEN={GITHUB_TOKEN}\nRUNNER={RUNNER_TOKEN}"},
        {"type": "result", "text": "done", "input_tokens": 12},
    )
    logs = write_try(tmp_path, stdout, stderr=f"warning: using {ANTHROPIC_KEY}\n")
    text = transcripts.collect(logs, secrets=(JOB_TOKEN, RUNNER_TOKEN))
    assert leaked(text) == []
    out, _, err = text.partition(transcripts.STDERR_HEADER)
    assert "[REDACTED]" in err
    for line in out.splitlines():  # masking keeps every JSONL line valid JSON
        json.loads(line)
    assert '"input_tokens": 12' in out, "counts are not secrets"


def test_cap_keeps_the_head_and_the_tail_with_a_marker(tmp_path: Path) -> None:
    lines = [json.dumps({"n": i, "pad": "x" * 80}) for i in range(5000)]
    text = "\n".join(lines) + "\n"
    capped = transcripts.cap(text, 20_000)
    assert len(capped.encode()) <= 20_000
    head, marker, tail = capped.partition("[stoneforge: about ")
    assert marker
    assert "bytes of output left out here]" in tail
    assert head.startswith(lines[0])
    assert tail.endswith(lines[-1] + "\n")
    kept = head.splitlines() + tail.splitlines()[1:]
    assert all(json.loads(line)["pad"] for line in kept), "cuts fall between lines"
    assert transcripts.cap("short\n", 100) == "short\n"


def test_a_long_transcript_keeps_its_ends_and_no_secret_survives_a_cut(tmp_path: Path) -> None:
    limit = 40_000
    # Secrets all through the output, so whichever byte a cut falls on is close to one.
    stdout = jsonl(
        *(
            {"n": i, "text": f"{ANTHROPIC_KEY} {JOB_TOKEN}" if i % 7 == 0 else "y" * 100}
            for i in range(20_000)
        )
    )
    logs = write_try(tmp_path, stdout)
    assert len(stdout) > limit + 2 * transcripts.SLACK_BYTES  # the head-and-tail read path
    text = transcripts.collect(logs, secrets=(JOB_TOKEN,), limit=limit)
    assert len(text.encode()) <= limit
    assert text.startswith('{"n": 0,')
    assert text.endswith('{"n": 19999, "text": "sk-ant-[REDACTED] [REDACTED]"}\n')
    assert "left out here]" in text
    assert leaked(text) == []
    assert "Zx9" not in text, "no fragment of a secret either"
    assert JOB_TOKEN[:12] not in text


def test_only_the_tail_of_stderr_is_kept(tmp_path: Path) -> None:
    stderr = "".join(f"line {i}\n" for i in range(50_000))
    logs = write_try(tmp_path, jsonl({"type": "result"}), stderr)
    text = transcripts.collect(logs)
    _, _, err = text.partition(transcripts.STDERR_HEADER)
    assert "line 49999" in err
    assert "line 0\n" not in err
    assert len(err.encode()) <= transcripts.STDERR_TAIL_BYTES + 1


def test_missing_files_give_an_empty_transcript(tmp_path: Path) -> None:
    assert transcripts.collect(tmp_path / "nothing-here") == ""


def _result() -> Result:
    return Result(Outcome.COMPLETED, "success", usage=Usage(input_tokens=7, output_tokens=3))


async def test_upload_posts_the_redacted_transcript_with_the_try_facts(tmp_path: Path) -> None:
    logs = write_try(tmp_path, jsonl({"type": "text", "text": f"token {JOB_TOKEN}"}))
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "abc", "url": "http://bot/transcripts/abc"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        link = await transcripts.upload(
            client,
            "http://bot/",
            "octo/app#5@1",
            logs,
            try_number=2,
            agent="script",
            result=_result(),
            seconds=1.5,
            secrets=(JOB_TOKEN, ""),
            usage=Usage(input_tokens=5, output_tokens=1, cost_usd=0.01),
        )
    assert link == "http://bot/transcripts/abc"
    (request,) = seen
    assert request.url.raw_path == b"/runner/jobs/octo%2Fapp%235%401/transcripts"
    body = json.loads(request.content)
    assert body["try"] == 2
    assert body["agent"] == "script"
    assert body["outcome"] == "completed"
    assert body["usage"] == {
        "input_tokens": 5,
        "output_tokens": 1,
        "cost_usd": 0.01,
        "cost_note": None,
    }
    assert JOB_TOKEN not in request.content.decode()
    assert "[REDACTED]" in body["text"]


@pytest.mark.parametrize("failure", ["connect", "500", "413"])
async def test_a_failed_upload_is_logged_and_returns_none(
    tmp_path: Path, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    logs = write_try(tmp_path, jsonl({"type": "text", "text": "hi"}))

    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(int(failure), json={"message": "no"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        link = await transcripts.upload(
            client,
            "http://bot",
            "octo/app#5@1",
            logs,
            try_number=1,
            agent="script",
            result=_result(),
            seconds=0.1,
            secrets=(),
        )
    assert link is None
    assert any("transcript_upload" in r.getMessage() for r in caplog.records)


async def test_without_a_bot_connection_nothing_is_sent(tmp_path: Path) -> None:
    logs = write_try(tmp_path, jsonl({"type": "text"}))
    kwargs: dict[str, Any] = {"try_number": 1, "agent": "a", "result": _result(), "seconds": 0}
    assert await transcripts.upload(None, "http://bot", "j", logs, secrets=(), **kwargs) is None
