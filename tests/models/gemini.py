"""The Gemini API (``generativelanguage.googleapis.com/v1beta``) as the Gemini CLI calls it.

``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` answers SSE ``data:`` frames, each a
``GenerateContentResponse``: the text first, then one frame with the function calls and the
``finishReason``. Each frame carries the call's ``usageMetadata`` so far, as Gemini's do (the CLI
keeps the last).
``:generateContent`` answers the same turn as one JSON object, ``:countTokens`` a rough count.
Failures use Google's error shape ``{"error": {code, message, status, details}}``:

- 429 ``RESOURCE_EXHAUSTED`` with a ``google.rpc.RetryInfo`` ``retryDelay`` and a ``retry-after``
  header (with ``daily_quota``: a per-day ``QuotaFailure`` and no delay);
- a bad key as 401 ``UNAUTHENTICATED``, or with ``bad_key_status`` the 400
  ``INVALID_ARGUMENT``/``API_KEY_INVALID`` or 403 ``PERMISSION_DENIED`` Google also sends;
- 400 ``INVALID_ARGUMENT`` "The input token count (N) exceeds the maximum number of tokens
  allowed" for an overflow;
- 500 ``INTERNAL``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.models.scenario import Overflow, RateLimit, ServerError, Turn, Unauthorized
from tests.models.server import Answer, Recorded, ScriptedServer, sse

ROUTE = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):(?P<method>\w+)$")
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
INPUT_LIMIT = 1_048_576  # gemini-2.5's input window, as the overflow message states it


class GeminiServer(ScriptedServer):
    def __init__(
        self,
        *args: Any,
        bad_key_status: int = 401,
        daily_quota: bool = False,
        thoughts_tokens: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.bad_key_status = bad_key_status
        self.daily_quota = daily_quota  # a 429 is the free tier's per-day quota, no RetryInfo
        self.thoughts_tokens = thoughts_tokens  # per call, besides the turn's output tokens
        self.calls: list[tuple[str, str]] = []  # (model, method) of each model call
        self._responses = 0

    def answer(self, request: Recorded) -> Answer:
        match = ROUTE.match(request.path.split("?")[0])
        if request.method != "POST" or match is None:
            return self.not_found(request)
        model, method = match.group("model"), match.group("method")
        self.calls.append((model, method))
        body = request.json()
        if method == "countTokens":
            return Answer.json(200, {"totalTokens": len(json.dumps(body)) // 4})
        if method not in ("streamGenerateContent", "generateContent"):
            return self.not_found(request)
        turn = self.next_turn(*conversation(body))
        if turn.failure is not None:
            return self.failure_answer(turn.failure, model)
        if method == "generateContent":
            if turn.stall_s:
                self.pause(turn.stall_s)
            return Answer.json(200, self._response(turn, model, text=True, calls=True, last=True))
        return Answer(200, {"content-type": "text/event-stream"}, self._stream(turn, model))

    # -- answers -------------------------------------------------------------------------------

    def _stream(self, turn: Turn, model: str) -> Iterator[bytes]:
        if turn.stall_s:
            self.pause(turn.stall_s)
        if turn.text:
            yield sse(self._response(turn, model, text=True, calls=False, last=False))
        yield sse(self._response(turn, model, text=False, calls=True, last=True))

    def _response(
        self, turn: Turn, model: str, *, text: bool, calls: bool, last: bool
    ) -> dict[str, Any]:
        self._responses += 1
        parts: list[dict[str, Any]] = []
        if text and turn.text:
            parts.append({"text": turn.text})
        if calls:
            parts += [
                {"functionCall": {"name": name, "args": args}}
                for name, args in turn.calls(self.script.dialect)
            ]
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            candidate["finishReason"] = "STOP"
        return {
            "candidates": [candidate],
            "usageMetadata": usage(turn, self.thoughts_tokens),
            "modelVersion": model,
            "responseId": f"resp-{self._responses}",
        }

    def failure_answer(self, failure: object, model: str) -> Answer:
        """Google's error shapes for the scenario's failures."""
        if isinstance(failure, RateLimit) and self.daily_quota:
            return google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
                [
                    {
                        "@type": QUOTA_FAILURE,
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/"
                                "generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                "quotaDimensions": {"location": "global", "model": model},
                                "quotaValue": "250",
                            }
                        ],
                    }
                ],
            )
        if isinstance(failure, RateLimit):
            delay = failure.retry_after_s
            return google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details. "
                f"Please retry in {delay}s.",
                [
                    {
                        "@type": QUOTA_FAILURE,
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/"
                                "generate_content_paid_tier_input_token_count",
                                "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute",
                                "quotaDimensions": {"location": "global", "model": model},
                                "quotaValue": "1000000",
                            }
                        ],
                    },
                    {"@type": RETRY_INFO, "retryDelay": f"{delay}s"},
                ],
                {"retry-after": str(delay)},
            )
        if isinstance(failure, Unauthorized):
            return self._bad_key()
        if isinstance(failure, Overflow):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                f"The input token count ({INPUT_LIMIT + 4242}) exceeds the maximum number of "
                f"tokens allowed ({INPUT_LIMIT}).",
            )
        if isinstance(failure, ServerError):
            return google_error(500, "INTERNAL", "An internal error has occurred.")
        raise TypeError(f"not a failure: {failure!r}")

    def _bad_key(self) -> Answer:
        message = "API key not valid. Please pass a valid API key."
        details = [
            {
                "@type": ERROR_INFO,
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        status = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
        return google_error(self.bad_key_status, status[self.bad_key_status], message, details)


def usage(turn: Turn, thoughts: int = 0) -> dict[str, Any]:
    """``usageMetadata`` as Gemini reports it: the prompt count includes the cached tokens, the
    candidates count leaves out the thoughts, the total has them all."""
    meta: dict[str, Any] = {
        "promptTokenCount": turn.input_tokens,
        "candidatesTokenCount": turn.output_tokens,
        "totalTokenCount": turn.input_tokens + turn.output_tokens + thoughts,
    }
    if turn.cached_tokens:
        meta["cachedContentTokenCount"] = turn.cached_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def google_error(
    code: int,
    status: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Answer.json(code, {"error": error}, headers)


def conversation(body: dict[str, Any]) -> tuple[str, int]:
    """(the user turns' text, the number of function responses) of a ``contents`` request."""
    texts: list[str] = []
    rounds = 0
    for content in body.get("contents") or []:
        if not isinstance(content, dict) or content.get("role", "user") != "user":
            continue
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if "functionResponse" in part:
                rounds += 1
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "\n".join(texts), rounds
