"""OpenAI Chat Completions (``POST /v1/chat/completions``), streamed or not: opencode, aider and
the Copilot CLI (BYOK) speak it.

Streaming answers are ``chat.completion.chunk`` SSE frames: the text, then each tool call in
``delta.tool_calls``, a last chunk with ``finish_reason`` (``tool_calls`` or ``stop``), a usage-only
chunk (``choices: []``) when ``stream_options.include_usage`` asks for it, then ``[DONE]``.
Failures use OpenAI's error shapes (429 with ``retry-after``, 401 ``invalid_api_key``, 400
``context_length_exceeded``). ``is_side_call`` lets a test answer a CLI's side requests (a title
generator, say) without spending a turn of the script.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
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


class ChatCompletionsServer(ScriptedServer):
    def __init__(self, *args: Any, is_side_call: SideCall | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_side_call = is_side_call
        self.side_calls: list[Recorded] = []
        self._calls = 0

    def answer(self, request: Recorded) -> Answer:
        path = request.path.split("?")[0]
        if request.method == "GET" and path.rstrip("/").endswith("/models"):
            models = [{"id": self.model, "object": "model"}]
            return Answer.json(200, {"object": "list", "data": models})
        if request.method != "POST" or not path.endswith("/chat/completions"):
            return self.not_found(request)
        body = request.json()
        side = self.is_side_call(body) if self.is_side_call else None
        if side is not None:
            self.side_calls.append(request)
            turn = reply(Say(side), input_tokens=100, output_tokens=5)
        else:
            turn = self.next_turn(*conversation(body))
        if turn.failure is not None:
            return failure_answer(turn.failure)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Answer(
                200, {"content-type": "text/event-stream"}, self._stream(turn, include_usage)
            )
        return Answer.json(200, self._completion(turn))

    def _ids(self) -> tuple[str, int]:
        self._calls += 1
        return f"chatcmpl-{self._calls}", int(time.time())

    def _tool_calls(self, turn: Turn) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{self._calls}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(turn.calls(self.script.dialect))
        ]

    def _usage(self, turn: Turn) -> dict[str, Any]:
        return {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "prompt_tokens_details": {"cached_tokens": turn.cached_tokens},
        }

    def _completion(self, turn: Turn) -> dict[str, Any]:
        cid, created = self._ids()
        calls = self._tool_calls(turn)
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
        if calls:
            message["tool_calls"] = calls
        if turn.stall_s:
            self.pause(turn.stall_s)
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
            ],
            "usage": self._usage(turn),
        }

    def _stream(self, turn: Turn, include_usage: bool) -> Iterator[bytes]:
        cid, created = self._ids()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
            )

        yield chunk({"role": "assistant", "content": ""})
        if turn.stall_s:
            self.pause(turn.stall_s)
        if turn.text:
            yield chunk({"content": turn.text})
        calls = self._tool_calls(turn)
        for index, call in enumerate(calls):
            yield chunk({"tool_calls": [{"index": index, **call}]})
        yield chunk({}, "tool_calls" if calls else "stop")
        if include_usage:
            yield sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model,
                    "choices": [],
                    "usage": self._usage(turn),
                }
            )
        yield sse("[DONE]")


def conversation(body: dict[str, Any]) -> tuple[str, int]:
    """(the user messages' text, the number of tool results) of a chat completions request."""
    texts: list[str] = []
    rounds = 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            rounds += 1
        elif message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    return "\n".join(texts), rounds


def failure_answer(failure: object) -> Answer:
    """OpenAI's error shapes (shared with the Responses API)."""
    if isinstance(failure, RateLimit):
        return Answer.json(
            429,
            {
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            {"retry-after": str(failure.retry_after_s)},
        )
    if isinstance(failure, Unauthorized):
        return Answer.json(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided: dummy.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
    if isinstance(failure, Overflow):
        return Answer.json(
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 128000 tokens. "
                    "However, your messages resulted in 131072 tokens. Please reduce the "
                    "length of the messages.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
        )
    if isinstance(failure, ServerError):
        return Answer.json(
            500,
            {
                "error": {
                    "message": "The server had an error",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        )
    raise TypeError(f"not a failure: {failure!r}")
