"""Agent adapters, one module per coding-agent CLI (contract: runner.agents.base)."""

from __future__ import annotations

from collections.abc import Callable

from runner.agents.base import AgentAdapter

# name -> factory; codex, opencode, gemini and aider slot in here later.
_FACTORIES: dict[str, Callable[[], AgentAdapter]] = {}


def _claude() -> AgentAdapter:
    from runner.agents.claude import ClaudeAdapter

    return ClaudeAdapter()


def _script() -> AgentAdapter:
    from runner.agents.script import ScriptAdapter

    return ScriptAdapter()


_FACTORIES.update(claude=_claude, script=_script)


def known_agents() -> list[str]:
    return sorted(_FACTORIES)


def get_adapter(name: str) -> AgentAdapter:
    """A fresh adapter for `name` (reads its environment now, not at import)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(known_agents())
        raise ValueError(f"unknown agent {name!r}; known agents: {known}") from None
    return factory()
