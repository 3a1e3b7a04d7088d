"""Validate fakehub's responses and webhook payloads against GitHub's own OpenAPI descriptions.

The REST description (OpenAPI 3.0.3, from npm ``@octokit/openapi``) and the webhooks description
(OpenAPI 3.1, from npm ``@octokit/openapi-webhooks``) are vendored gzipped in ``fakehub/spec/``.
Loading goes through plain ``jsonschema`` with a ``referencing`` registry holding the whole
document, after one pass that rewrites 3.0's ``nullable: true`` into a type union with ``null``.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parents[2] / "fakehub" / "spec"
REST_URI = "urn:github:rest"
HOOKS_URI = "urn:github:webhooks"


def _load(name: str) -> dict[str, Any]:
    with gzip.open(SPEC_DIR / name, "rt", encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]


def _denullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into JSON Schema type unions, in place."""
    if isinstance(node, dict):
        for value in node.values():
            _denullable(value)
        if node.pop("nullable", False):
            if "type" in node:
                kind = node["type"]
                node["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
                if "enum" in node and None not in node["enum"]:
                    node["enum"] = [*node["enum"], None]
            else:
                # $ref / allOf / anyOf / oneOf: wrap so null is accepted alongside the schema.
                inner = dict(node)
                node.clear()
                node["anyOf"] = [inner, {"type": "null"}]
    elif isinstance(node, list):
        for value in node:
            _denullable(value)
    return node


@dataclass(frozen=True)
class Problem:
    where: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: at {self.pointer or '/'}: {self.message}"


class Spec:
    """Both descriptions, loaded once; see :func:`load_spec`."""

    def __init__(self) -> None:
        self.rest = _denullable(_load("api.github.com.json.gz"))
        self.hooks = _load("webhooks.api.github.com.json.gz")
        self.registry: Registry = Registry().with_resources(
            [
                (REST_URI, Resource(contents=self.rest, specification=DRAFT202012)),
                (HOOKS_URI, Resource(contents=self.hooks, specification=DRAFT202012)),
            ]
        )
        templates = list(self.rest["paths"])
        # Most literal first: more fixed segments, then fewer parameters, then longer.
        templates.sort(
            key=lambda t: (
                -sum(1 for s in t.split("/") if s and "{" not in s),
                t.count("{"),
                -len(t),
            )
        )
        self._templates = [(t, re.compile("^" + _template_regex(t) + "$")) for t in templates]

    def match_path(self, path: str) -> str | None:
        for template, pattern in self._templates:
            if pattern.match(path):
                return template
        return None

    def _check(self, schema_ref: str, instance: Any, where: str) -> list[Problem]:
        validator = jsonschema.Draft202012Validator(
            {"$ref": schema_ref}, registry=self.registry, format_checker=None
        )
        problems = []
        for error in validator.iter_errors(instance):
            for leaf in _leaves(error):
                pointer = "".join(f"/{part}" for part in leaf.absolute_path)
                problems.append(Problem(where, pointer, _short(leaf.message)))
        return problems

    def validate_response(self, method: str, path: str, status: int, body: Any) -> list[Problem]:
        """Problems with ``body`` as the response to ``method path`` with ``status``.

        ``path`` is the concrete path after ``/api/v3``. A route or status the spec does not
        describe is itself reported as a problem.
        """
        where = f"{method.upper()} {path} -> {status}"
        template = self.match_path(path.split("?")[0])
        if template is None:
            return [Problem(where, "", "no path template in the REST description")]
        operation = self.rest["paths"][template].get(method.lower())
        if operation is None:
            return [Problem(where, "", f"{method} not described for {template}")]
        responses = operation.get("responses", {})
        if str(status) not in responses:
            if status >= 400:
                return self._check(f"{REST_URI}#/components/schemas/basic-error", body, where)
            return [Problem(where, "", f"status {status} not described for {template}")]
        escaped = template.replace("~", "~0").replace("/", "~1")
        base = f"{REST_URI}#/paths/{escaped}/{method.lower()}/responses/{status}"
        response = _resolve(self.rest, responses[str(status)])
        content = response.get("content", {})
        if "application/json" not in content:
            if body in (None, b"", ""):
                return []
            if status >= 400:
                # GitHub sends its error body even where the description lists none.
                return self._check(f"{REST_URI}#/components/schemas/basic-error", body, where)
            return [Problem(where, "", "a body was sent where the description has none")]
        ref = responses[str(status)].get("$ref")
        if ref:
            base = REST_URI + ref
        return self._check(base + "/content/application~1json/schema", body, where)

    def webhook_key(self, event: str, action: str | None) -> str:
        name = event.replace("_", "-")
        return f"{name}-{action.replace('_', '-')}" if action else name

    def validate_webhook(self, event: str, payload: dict[str, Any]) -> list[Problem]:
        action = payload.get("action")
        key = self.webhook_key(event, action)
        where = f"webhook {event}" + (f".{action}" if action else "")
        if key not in self.hooks["webhooks"]:
            return [Problem(where, "", f"no webhook {key!r} in the description")]
        ref = f"{HOOKS_URI}#/webhooks/{key}/post/requestBody/content/application~1json/schema"
        return self._check(ref, payload, where)


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _template_regex(template: str) -> str:
    out = []
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{"):
            # {ref} and {path} may span slashes in GitHub's routing.
            out.append(".+" if piece in ("{path}", "{ref}", "{name}") else "[^/]+")
        else:
            out.append(re.escape(piece))
    return "".join(out)


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The most specific errors under ``error`` (anyOf/oneOf branches flattened)."""
    if not error.context:
        return [error]
    best = jsonschema.exceptions.best_match(error.context)
    return _leaves(best) if best is not None else [error]


@functools.cache
def load_spec() -> Spec:
    return Spec()
