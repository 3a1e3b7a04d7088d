"""Agent adapters, one module per coding-agent CLI (contract: runner.agents.base)."""

from __future__ import annotations

from collections.abc import Callable

from runner.agents.base import AgentAdapter

# name -> factory. Each factory imports its module lazily and reads the environment when called.
_FACTORIES: dict[str, Callable[[], AgentAdapter]] = {}


def _claude() -> AgentAdapter:
    from runner.agents.claude import ClaudeAdapter

    return ClaudeAdapter()


def _script() -> AgentAdapter:
    from runner.agents.script import ScriptAdapter

    return ScriptAdapter()


def _codex() -> AgentAdapter:
    from runner.agents.codex import CodexAdapter

    return CodexAdapter()


def _opencode() -> AgentAdapter:
    from runner.agents.opencode import OpenCodeAdapter

    return OpenCodeAdapter()


def _gemini() -> AgentAdapter:
    from runner.agents.gemini import GeminiAdapter

    return GeminiAdapter()


def _aider() -> AgentAdapter:
    from runner.agents.aider import AiderAdapter

    return AiderAdapter()


def _copilot() -> AgentAdapter:
    from runner.agents.copilot import CopilotAdapter

    return CopilotAdapter()


def _command() -> AgentAdapter:
    from runner.agents.command import CommandAdapter

    return CommandAdapter()  # ValueError when STONEFORGE_AGENT_COMMAND is unset


_FACTORIES.update(
    claude=_claude,
    script=_script,
    codex=_codex,
    opencode=_opencode,
    gemini=_gemini,
    aider=_aider,
    copilot=_copilot,
    command=_command,
)


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
