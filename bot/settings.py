"""Process settings for the bot, read from the environment (``STONEFORGE_*``).

Built in ``create_app()`` / the CLI, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STONEFORGE_", extra="ignore")

    app_id: int
    private_key: str = Field(repr=False, description="App private key: PEM text or a path to it")
    webhook_secret: str = Field(repr=False)
    github_api_url: str = "https://api.github.com"
    database_url: str = "sqlite:///stoneforge.db"
    runner_token: str = Field(default="", repr=False, description="shared secret runners present")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="where runners and GitHub Actions jobs reach this bot",
    )

    trigger_label: str = "agent-ready"
    default_agent: str = "claude"
    merge_method: Literal["merge", "squash", "rebase"] = "squash"
    steward_interval_s: float = 3.0
    steward_refresh_s: float = Field(
        default=60.0,
        description="how long the steward trusts a pull request it has read when no webhook "
        "says it changed (a lost webhook delays merging by at most this)",
    )
    reconcile_interval_s: float = 600.0
    delivery_retention_s: float = Field(
        default=7 * 24 * 3600,
        ge=3 * 24 * 3600,  # GitHub may redeliver for three days: a stored id stops a replay
        description="how long handled webhook deliveries are kept (they are deleted after it, "
        "at each reconciliation; unhandled ones are always kept)",
    )
    merged_retention_s: float = Field(
        default=24 * 3600,
        ge=0,
        description="how long a merged task stays in the working set that view refreshes, "
        "dispatch and the steward read (older ones stay in the store for reports; a blocker "
        "that left it still counts as done)",
    )
    lease_s: float = 120.0
    github_writes_per_minute: int = Field(
        default=80,
        ge=1,
        description="content-creating requests a minute per installation "
        "(GitHub's secondary rate limit; the adapter paces its writes under it)",
    )
    github_writes_per_hour: int = Field(default=500, ge=1, description="and an hour")
    max_body_bytes: int = 25 * 1024 * 1024

    @property
    def html_url(self) -> str:
        """Where people browse: github.com for the public API, else the host of the API URL
        (GitHub Enterprise Server or a local stand-in)."""
        api = self.github_api_url.rstrip("/")
        if api == "https://api.github.com":
            return "https://github.com"
        return api.removesuffix("/api/v3")

    @field_validator("private_key")
    @classmethod
    def _load_pem(cls, value: str) -> str:
        text = value.strip()
        if text.startswith("-----BEGIN"):
            return value
        path = Path(text).expanduser()
        if path.is_file():
            return path.read_text()
        raise ValueError("STONEFORGE_PRIVATE_KEY must be PEM text or the path of a PEM file")
