"""Configuration errors a maintainer can act on: the dotted key, the line, and what to write.

Turns YAML syntax errors, duplicate keys, a wrong ``version`` and pydantic's validation errors
into ``ConfigError`` values, locating each key's line in the YAML node tree and suggesting the
closest known key for a typo.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from bot.core.config_keys import RepoConfig


@dataclass(frozen=True)
class ConfigError:
    """One problem in the file. ``path`` is the dotted key (``""`` for the whole file)."""

    path: str
    message: str
    line: int | None = None  # 1-based line in the file, where known

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path or 'file'}{where}: {self.message}"


# --- YAML helpers -----------------------------------------------------------------------------


def yaml_error(exc: yaml.YAMLError, text: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text[: exc.position].count("\n") + 1
    else:
        line = None
    return ConfigError("", message, line)


def duplicate_keys(node: yaml.Node, loc: tuple[str | int, ...]) -> list[ConfigError]:
    errors: list[ConfigError] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name in seen:
                path = _dotted((*loc, name))
                line = key.start_mark.line + 1
                errors.append(ConfigError(path, "appears twice; only one may stay", line))
            if name is not None:
                seen.add(name)
            errors += duplicate_keys(value, (*loc, name if name is not None else "?"))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            errors += duplicate_keys(item, (*loc, index))
    return errors


def _find(root: yaml.Node | None, loc: Sequence[Any], *, key: bool = False) -> yaml.Node | None:
    """The node at ``loc`` (its key node when ``key``), else the deepest node found on the way."""
    node = root
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            match = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and _same(k, part)
                ),
                None,
            )
            if match is None:
                return node
            node = match[0] if (key and last) else match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


_YAML_BOOLS = {True: {"yes", "y", "on", "true"}, False: {"no", "n", "off", "false"}}


def _same(node: yaml.ScalarNode, part: Any) -> bool:
    if isinstance(part, bool):
        return str(node.value).lower() in _YAML_BOOLS[part]
    return bool(node.value == str(part))


def _line(root: yaml.Node | None, loc: Sequence[Any], *, key: bool = False) -> int | None:
    node = _find(root, loc, key=key)
    if isinstance(node, yaml.CollectionNode) and loc and not key:
        node = _find(root, loc, key=True)  # a block mapping starts at its first child: use the key
    return node.start_mark.line + 1 if node is not None else None


# --- turning validation errors into sentences ---------------------------------------------------


def version_errors(data: dict[Any, Any], root: yaml.Node) -> list[ConfigError]:
    if "version" not in data:
        return [ConfigError("version", "is required: add `version: 1` as the first line")]
    value = data["version"]
    if type(value) is int and value == 1:
        return []
    return [
        ConfigError(
            "version",
            f"unsupported version {code(_show(value))}; this Stoneforge reads `version: 1`",
            _line(root, ["version"]),
        )
    ]


_TYPE_WORDS = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
}
_SHOULD = re.compile(r"^(Input|String|List|Dictionary|Value) should (have|be)\b")


def from_pydantic(err: Any, root: yaml.Node) -> ConfigError:
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "invalid_key":  # a section's key that is not a string: loc ends in the key
        return _bad_key(loc[:-1], value, root)
    if loc and loc[-1] == "[key]":  # a label map's key: loc ends in (key, "[key]")
        return _bad_key(loc[:-2], value, root)
    path = _dotted(loc)
    if kind == "extra_forbidden":
        return ConfigError(path, _unknown_key(loc), _line(root, loc, key=True))
    line = _line(root, loc)
    if kind == "missing":
        return ConfigError(path, "is required", line)
    if value is None and kind in _TYPE_WORDS:
        return ConfigError(path, "has no value; remove the key to use the default", line)
    if kind in _TYPE_WORDS:
        message = f"must be {_TYPE_WORDS[kind]} (got {describe(value)})"
        if isinstance(value, bool) and kind == "string_type":
            message += "; YAML reads yes/no/on/off/true/false as booleans, so quote the value"
        return ConfigError(path, message, line)
    message = str(err["msg"])
    if kind == "string_pattern_mismatch":
        return ConfigError(path, "must not be blank", line)
    if kind == "value_error":
        return ConfigError(path, message.removeprefix("Value error, "), line)
    message = _SHOULD.sub(lambda m: f"must {m.group(2)}", message)
    return ConfigError(path, f"{message} (got {code(_show(value))})", line)


def _bad_key(parent: tuple[Any, ...], key: Any, root: yaml.Node) -> ConfigError:
    node = _find(root, (*parent, key), key=True)
    written = node.value if isinstance(node, yaml.ScalarNode) else _show(key)
    message = f"keys must be strings (got {describe(key)})"
    if isinstance(key, bool):
        message += "; YAML reads yes/no/on/off/true/false as booleans, so quote the key"
    line = node.start_mark.line + 1 if node is not None else None
    return ConfigError(_dotted((*parent, written)), message, line)


def _unknown_key(loc: tuple[Any, ...]) -> str:
    name, parent = str(loc[-1]), loc[:-1]
    known = _known_keys(parent)
    if known is None:
        return "is not a known key"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {code(_dotted((*parent, close[0])))}?"
    else:
        elsewhere = [p for p in _all_paths(_model_at(parent)) if p.rsplit(".", 1)[-1] == name]
        prefix = _dotted(parent) + "." if parent else ""
        hint = f"did you mean {code(prefix + elsewhere[0])}?" if elsewhere else ""
    where = f"in {code(_dotted(parent))}" if parent else "at the top level"
    listing = ", ".join(code(k) for k in known)
    return " ".join(filter(None, ["is not a known key;", hint, f"known keys {where}: {listing}"]))


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) is Union:
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    current: Any = RepoConfig
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = _unwrap(field.annotation)
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _known_keys(loc: Sequence[Any]) -> list[str] | None:
    model = _model_at(loc)
    return list(model.model_fields) if model is not None else None


def _all_paths(model: type[BaseModel] | None, prefix: str = "") -> list[str]:
    """Dotted paths of the fields nested under ``model`` (sections only, not label maps)."""
    paths: list[str] = []
    for name, field in model.model_fields.items() if model else ():
        paths.append(prefix + name)
        inner = _unwrap(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths += _all_paths(inner, f"{prefix}{name}.")
    return paths


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        elif isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlevel = 2


def _show(value: Any) -> str:
    """A short YAML-flavoured rendering of a user's value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _repr.repr(value)


def describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}  # fmt: skip
    kind = kinds.get(type(value), type(value).__name__)
    return f"{kind} {code(_show(value))}"


def code(text: str) -> str:
    """``text`` as a markdown code span (no mentions, links or HTML inside), whatever it holds."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def escape_text(message: str) -> str:
    """Escape HTML in ``message`` outside its code spans (YAML messages say ``<block end>``)."""
    parts = re.split(r"(`+)(.*?)(\1)", message)
    out: list[str] = []
    for index in range(0, len(parts), 4):
        out.append(parts[index].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        if index + 3 < len(parts):
            out.append("".join(parts[index + 1 : index + 4]))
    return "".join(out)
