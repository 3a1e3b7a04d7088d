"""Protocol bodies over HTTP: a request body read as a ``bot.core.protocol`` model, or the
refusal to send instead (400 for a body that is not JSON, 422 naming each bad field; every
refusal's body is a ``Refusal``). Used by the runner API and the Actions claim."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from bot.core.protocol import Refusal

T = TypeVar("T")


def refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse(Refusal(message=message).model_dump(), status_code=status)


def parse_body(raw: bytes, adapter: TypeAdapter[T]) -> T | JSONResponse:
    """``raw`` as the adapter's model; or the answer: 400 (not JSON), 422 naming each bad field."""
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            return refuse(400, "body must be JSON")
        return refuse(422, "; ".join(_problem(e) for e in errors))


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
