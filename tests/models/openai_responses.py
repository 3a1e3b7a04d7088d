"""OpenAI Responses API (``POST /v1/responses``, ``stream: true``): the Codex CLI speaks it.

A streamed answer is the SSE sequence ``response.created``, then per output item
``response.output_item.added`` / its deltas (``response.output_text.delta`` for a message,
``response.function_call_arguments.delta`` and ``.done`` for a function call) /
``response.output_item.done``, and last ``response.completed`` with the usage
(``input_tokens``, ``input_tokens_details.cached_tokens``, ``output_tokens``,
``output_tokens_details.reasoning_tokens``). Codex builds its items from ``output_item.done`` and
its token counts from ``response.completed``.

Failures: a rate limit, a bad key and a server error are HTTP errors in OpenAI's shapes
(``failure_answer`` of ``openai_chat``). A context overflow is the streamed ``response.failed``
with ``code: context_length_exceeded``: that is how the Responses API reports it mid-stream, and
the form Codex maps to its own "ran out of room in the model's context window" error (an HTTP 400
reaches Codex as an opaque bad request).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from tests.models.openai_chat import failure_answer
from tests.models.scenario import Overflow, Turn
from tests.models.server import Answer, Recorded, ScriptedServer, sse


class ResponsesServer(ScriptedServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls = 0

    def answer(self, request: Recorded) -> Answer:
        path = request.path.split("?")[0]
        if request.method == "GET" and path.rstrip("/").endswith("/models"):
            return Answer.json(200, {"object": "list", "data": [{"id": self.model}]})
        if request.method != "POST" or not path.endswith("/responses"):
            return self.not_found(request)
        body = request.json()
        turn = self.next_turn(*conversation(body))
        self._calls += 1
        if isinstance(turn.failure, Overflow):
            return _event_stream(self._failed(body))
        if turn.failure is not None:
            return failure_answer(turn.failure)
        return _event_stream(self._stream(turn, body))

    def _response(self, body: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": f"resp_{self._calls}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model") or self.model,
            "output": [],
            **extra,
        }

    def _stream(self, turn: Turn, body: dict[str, Any]) -> Iterator[bytes]:
        seq = _Sequence()
        yield seq.event("response.created", response=self._response(body, "in_progress"))
        if turn.stall_s:
            self.pause(turn.stall_s)
        output: list[dict[str, Any]] = []
        if turn.text:
            item_id = f"msg_{self._calls}"
            yield seq.event(
                "response.output_item.added",
                output_index=len(output),
                item={
                    "id": item_id,
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                },
            )
            yield seq.event(
                "response.output_text.delta",
                item_id=item_id,
                output_index=len(output),
                content_index=0,
                delta=turn.text,
            )
            item = {
                "id": item_id,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
            }
            yield seq.event("response.output_item.done", output_index=len(output), item=item)
            output.append(item)
        for i, (name, args) in enumerate(turn.calls(self.script.dialect)):
            item_id, arguments = f"fc_{self._calls}_{i}", json.dumps(args)
            call = {
                "id": item_id,
                "type": "function_call",
                "call_id": f"call_{self._calls}_{i}",
                "name": name,
            }
            yield seq.event(
                "response.output_item.added",
                output_index=len(output),
                item={**call, "status": "in_progress", "arguments": ""},
            )
            yield seq.event(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=len(output),
                delta=arguments,
            )
            yield seq.event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=len(output),
                arguments=arguments,
            )
            item = {**call, "status": "completed", "arguments": arguments}
            yield seq.event("response.output_item.done", output_index=len(output), item=item)
            output.append(item)
        response = self._response(body, "completed", usage=_usage(turn))
        response["output"] = output
        yield seq.event("response.completed", response=response)

    def _failed(self, body: dict[str, Any]) -> Iterator[bytes]:
        seq = _Sequence()
        yield seq.event("response.created", response=self._response(body, "in_progress"))
        error = {
            "code": "context_length_exceeded",
            "message": "Your input exceeds the context window of this model. Please adjust "
            "your input and try again.",
        }
        yield seq.event("response.failed", response=self._response(body, "failed", error=error))


class _Sequence:
    """Numbers a stream's events (``sequence_number``) as the real API does."""

    def __init__(self) -> None:
        self.n = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.n, **fields}
        self.n += 1
        return sse(data, event=kind)


def _event_stream(chunks: Iterator[bytes]) -> Answer:
    return Answer(200, {"content-type": "text/event-stream"}, chunks)


def _usage(turn: Turn) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "input_tokens_details": {"cached_tokens": turn.cached_tokens},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": turn.reasoning_tokens},
        "total_tokens": turn.input_tokens + turn.output_tokens,
    }


def conversation(body: dict[str, Any]) -> tuple[str, int]:
    """(the user messages' text, the number of tool results) of a Responses request's ``input``.

    A user message's content is a string or a list of ``input_text`` parts; every
    ``function_call_output`` (and ``custom_tool_call_output``) item is one round."""
    texts: list[str] = []
    rounds = 0
    items = body.get("input")
    if isinstance(items, str):
        return items, 0
    for item in items or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            rounds += 1
        elif item.get("role") == "user" and item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    return "\n".join(texts), rounds
