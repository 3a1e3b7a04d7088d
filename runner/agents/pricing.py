"""What a run cost, for CLIs that report tokens but no cost (Codex, Gemini CLI, Copilot BYOK).

Prices live in one data file, ``prices.json`` beside this module, with the date they were taken.
A model is matched by its name without a provider prefix (``openai/gpt-5`` is ``gpt-5``), exactly
or else by the longest listed name it starts with (``gpt-5-codex-2025-09-15`` is ``gpt-5-codex``).
A model the table does not know is counted at the highest price its provider lists, field by
field, so a budget errs on the safe side; a model whose provider is unknown too, at the highest
price of any provider. Either way the estimate says so in ``note``, which the pull request's run
table shows beside the cost.

Token fields, as ``runner.agents.base.Usage`` defines them: ``input_tokens`` are input tokens not
read from a cache, ``cache_read`` and ``cache_write`` the cached ones, ``output_tokens`` every
billed output token (reasoning included).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.agents.base import Usage

PRICES = Path(__file__).with_name("prices.json")
FIELDS = ("input", "cache_read", "cache_write", "output")
# Which provider a model name belongs to, by its first letters, when the CLI does not say.
_PREFIXES = {
    "claude": "anthropic",
    "gpt": "openai",
    "o1": "openai",
    "o3": "openai",
    "o4": "openai",
    "codex": "openai",
    "gemini": "google",
}


@dataclass(frozen=True)
class Estimate:
    cost_usd: float
    #: how the cost was estimated (and, for an unknown model, at which price)
    note: str
    unknown_model: bool = False


@functools.cache
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PRICES.read_text())
    return data


def provider_of(model: str) -> str | None:
    prefix, _, rest = model.partition("/")
    if rest and prefix in table()["providers"]:
        return prefix
    name = rest or model
    for start, provider in _PREFIXES.items():
        if name.startswith(start):
            return provider
    return None


def _rates(provider: str | None, model: str) -> tuple[dict[str, float], str | None]:
    providers: dict[str, dict[str, dict[str, float]]] = table()["providers"]
    name = model.rsplit("/", 1)[-1]
    models = providers.get(provider or "", {})
    if name in models:
        return models[name], None
    starts = [listed for listed in models if name.startswith(listed)]
    if starts:
        return models[max(starts, key=len)], None
    pool = list(models.values()) if models else [m for p in providers.values() for m in p.values()]
    highest = {f: max(rates.get(f, rates["input"]) for rates in pool) for f in FIELDS}
    whose = f"{provider}'s" if models else "any provider's"
    return highest, f"unknown model {model!r}: counted at {whose} highest price"


def estimate(model: str | None, usage: Usage, provider: str | None = None) -> Estimate:
    """The cost of ``usage`` spent on ``model`` (``provider`` when the CLI knows it)."""
    name = model or "unknown"
    rates, note = _rates(provider or provider_of(name), name)
    tokens = {
        "input": usage.input_tokens,
        "cache_read": usage.cache_read,
        "cache_write": usage.cache_write,
        "output": usage.output_tokens,
    }
    cost = sum(tokens[f] * rates.get(f, rates["input"]) for f in FIELDS) / 1_000_000
    dated = f"estimated from tokens at the prices of {table()['taken']}"
    return Estimate(round(cost, 6), f"{note}; {dated}" if note else dated, note is not None)
