"""What ``stoneforge demo`` hands the runner for its agent, and whether that agent can work.

The demo starts its runner with a plain environment (``demo.pipeline``); ``agent_env`` adds what
the chosen adapter declares (``credential_env``: its credentials and their settings, and
``bin_env``: its executable override) when the caller has them set, and nothing else. The demo
package never imports the runner, so the command line works this out and passes it on.

``check_agent`` stops a demo that cannot work before anything starts, with one line saying what
to install or export:

1. the CLI is missing, will not start, or is of an unsupported version (the adapter's probe);
2. none of the adapter's login variables (its ``credential_env`` names ending in ``_API_KEY``,
   ``_TOKEN`` or ``_AUTH_CONTENT``) is set, and no stored login reaches the agent. The runner gives
   each agent a private, empty HOME, so a login kept under the caller's HOME (``~/.claude``,
   ``~/.codex``, ``~/.gemini``, ``~/.local/share/opencode``) never does; only a configuration
   directory passed by a declared variable (codex: ``CODEX_HOME/auth.json``) is looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.agents import get_adapter
from runner.agents.base import AgentAdapter
from runner.agents.probe import ProbeError

LOGIN_SUFFIXES = ("_API_KEY", "_TOKEN", "_AUTH_CONTENT")


@dataclass(frozen=True)
class Install:
    """How a user gets a CLI, and what its login looks like to the demo."""

    command: str  # what installs it
    login_hint: str  # what to export when it has no credentials
    stored_logins: tuple[tuple[str, str], ...] = ()  # (directory variable, file in it)


INSTALL = {
    "claude": Install(
        "npm install -g @anthropic-ai/claude-code",
        "export ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN (printed by `claude setup-token`)",
    ),
    "codex": Install(
        "npm install -g @openai/codex",
        "export OPENAI_API_KEY (or CODEX_API_KEY), or CODEX_HOME pointing at a directory with "
        "the auth.json of a `codex login`",
        stored_logins=(("CODEX_HOME", "auth.json"),),
    ),
    "gemini": Install("npm install -g @google/gemini-cli", "export GEMINI_API_KEY"),
    "opencode": Install(
        "npm install -g opencode-ai",
        "export your provider's key (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), or "
        "OPENCODE_AUTH_CONTENT holding the auth.json of an `opencode auth login`",
    ),
    "copilot": Install(
        "npm install -g @github/copilot",
        "export COPILOT_GITHUB_TOKEN, or COPILOT_PROVIDER_API_KEY with COPILOT_PROVIDER_BASE_URL "
        "(a provider of your own)",
    ),
    "aider": Install(
        "pipx install aider-chat",
        "export your provider's key (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)",
    ),
}
PRIVATE_HOME = "a login kept under your HOME never reaches the agent, which has a private HOME"


def agent_env(agent: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` the adapter for ``agent`` declares, those that are set."""
    adapter = get_adapter(agent)
    names = [*adapter.credential_env, *([adapter.bin_env] if adapter.bin_env else [])]
    return {name: environ[name] for name in names if environ.get(name)}


def check_agent(agent: str, environ: Mapping[str, str]) -> str | None:
    """None when ``agent`` can run with ``environ`` (the caller's); else one line saying why not."""
    try:
        adapter = get_adapter(agent)
    except ValueError as exc:  # unknown name, or `command` without its command line
        return str(exc)
    install = INSTALL.get(agent)
    binary = environ.get(adapter.bin_env) if adapter.bin_env else None
    try:
        adapter.probe(binary or None)
    except (ProbeError, OSError) as exc:
        if install is None:
            return f"{agent} cannot run: {exc}"
        return f"{agent} cannot run: {exc}; install it with `{install.command}`"
    if install is None or _logged_in(adapter, install, environ):
        return None
    return f"{agent} has no credentials: {install.login_hint} ({PRIVATE_HOME})"


def _logged_in(adapter: AgentAdapter, install: Install, environ: Mapping[str, str]) -> bool:
    keys = [name for name in adapter.credential_env if name.endswith(LOGIN_SUFFIXES)]
    if any(environ.get(name) for name in keys):
        return True
    return any(
        environ.get(variable) and (Path(environ[variable]) / name).is_file()
        for variable, name in install.stored_logins
        if variable in adapter.credential_env
    )
