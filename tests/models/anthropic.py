"""The Anthropic Messages API (``POST /v1/messages``), streamed: Claude Code speaks it.

Claude Code 2.1.328 streams every call and never asks ``/v1/messages/count_tokens``: a request
that is not streamed, or any other path, gets 404 and lands in ``unknown`` for a test to see.
Answers are the Messages SSE events: ``message_start`` (the input usage), then per content
block ``content_block_start`` / ``content_block_delta`` (``text_delta``, or ``input_json_delta``
for a ``tool_use`` block's arguments) / ``content_block_stop``, then ``message_delta``
(``stop_reason`` ``tool_use`` or ``end_turn``, the output usage) and ``message_stop``. Failures
use Anthropic's error shapes: 429 ``rate_limit_error`` with ``retry-after`` and the
``anthropic-ratelimit-*-reset`` headers, 401 ``authentication_error``, 400
``invalid_request_error`` "prompt is too long: N tokens > 200000 maximum", 500 ``api_error``
(529 ``overloaded_error`` for ``ServerError(529)``). ``is_side_call`` lets a test answer the
CLI's side requests (a compaction's summary, say) without spending a turn of the script.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.models.scenario import (
    Overflow,
    RateLimit,
    Say,
    ServerError,
    Turn,
    Unauthorized,
    reply,
)
from tests.models.server import Answer, Recorded, ScriptedServer, sse

SideCall = Callable[[dict[str, Any]], str | None]  # body -> the text to answer, or None
OVERFLOW_TOKENS = 213_456
REMINDER = "<system-reminder>"


class MessagesServer(ScriptedServer):
    def __init__(self, *args: Any, is_side_call: SideCall | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model", "claude-sonnet-4-5-20250929")
        super().__init__(*args, **kwargs)
        self.is_side_call = is_side_call
        self.side_calls: list[Recorded] = []
        self._calls = 0

    def answer(self, request: Recorded) -> Answer:
        path = request.path.split("?")[0].rstrip("/")
        if request.method != "POST" or not path.endswith("/v1/messages"):
            return self.not_found(request)
        body = request.json()
        if not body.get("stream"):
            return self.not_found(request)  # Claude Code always streams: a change to notice
        side = self.is_side_call(body) if self.is_side_call else None
        if side is not None:
            self.side_calls.append(request)
            turn = reply(Say(side), input_tokens=100, output_tokens=5)
        else:
            turn = self.next_turn(*conversation(body))
        if turn.failure is not None:
            return failure_answer(turn.failure)
        model = str(body.get("model") or self.model)
        return Answer(200, {"content-type": "text/event-stream"}, self._stream(turn, model))

    def _id(self) -> str:
        self._calls += 1
        return f"msg_{self._calls:04d}"

    def _blocks(self, turn: Turn) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if turn.text:
            blocks.append({"type": "text", "text": turn.text})
        for i, (name, args) in enumerate(turn.calls(self.script.dialect)):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{self._calls:04d}_{i}",
                    "name": name,
                    "input": args,
                }
            )
        return blocks

    def _usage(self, turn: Turn, *, output: int) -> dict[str, Any]:
        return {
            "input_tokens": turn.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": turn.cached_tokens,
            "output_tokens": output,
        }

    def _stream(self, turn: Turn, model: str) -> Iterator[bytes]:
        mid = self._id()
        blocks = self._blocks(turn)
        start = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(turn, output=1),
        }
        yield sse({"type": "message_start", "message": start}, "message_start")
        if turn.stall_s:
            self.pause(turn.stall_s)
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                head: dict[str, Any] = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                head = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield sse(
                {"type": "content_block_start", "index": index, "content_block": head},
                "content_block_start",
            )
            yield sse(
                {"type": "content_block_delta", "index": index, "delta": delta},
                "content_block_delta",
            )
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        has_tools = any(b["type"] == "tool_use" for b in blocks)
        yield sse(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if has_tools else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": turn.output_tokens},
            },
            "message_delta",
        )
        yield sse({"type": "message_stop"}, "message_stop")


def conversation(body: dict[str, Any]) -> tuple[str, int]:
    """(the user messages' text, the number of tool results) of a Messages request."""
    texts: list[str] = []
    rounds = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "tool_result":
                rounds += 1
            elif part.get("type") == "text":
                text = str(part.get("text", ""))
                if not text.startswith(REMINDER):  # context the CLI attached, not the user's
                    texts.append(text)
    return "\n".join(texts), rounds


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Answer.json(status, body, {"request-id": "req_test", **(headers or {})})


def failure_answer(failure: object) -> Answer:
    """Anthropic's error shapes."""
    if isinstance(failure, RateLimit):
        reset_at = datetime.now(UTC) + timedelta(seconds=failure.retry_after_s)
        reset = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "retry-after": str(failure.retry_after_s),
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": reset,
        }
        message = "This request would exceed the rate limit for your organization."
        return _error(429, "rate_limit_error", message, headers)
    if isinstance(failure, Unauthorized):
        return _error(401, "authentication_error", "invalid x-api-key")
    if isinstance(failure, Overflow):
        message = f"prompt is too long: {OVERFLOW_TOKENS} tokens > 200000 maximum"
        return _error(400, "invalid_request_error", message)
    if isinstance(failure, ServerError):
        if failure.status == 529:
            return _error(529, "overloaded_error", "Overloaded")
        return _error(failure.status, "api_error", "Internal server error")
    raise TypeError(f"not a failure: {failure!r}")
