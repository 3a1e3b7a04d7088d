"""What the action reads from its environment: its inputs and the Actions runner's context.

A composite action does not export its inputs by itself; ``action.yml`` passes each one as an
``INPUT_<NAME>`` variable (upper case, as JavaScript and Docker actions receive them).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ActionInputs(BaseModel):
    """The inputs of ``action/action.yml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(min_length=1, description="The job the bot dispatched, e.g. octo/app#5@1.")
    bot_url: str = Field(description="Where the bot serves the runner API.")
    job_token: SecretStr = Field(description="Single-use claim token for this job.")
    agent: str | None = Field(None, description="Agent adapter overriding the job's choice.")
    workers: Literal[1] = Field(1, description="An action runs exactly one job.")

    @field_validator("bot_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("bot_url must be an http(s) URL")
        return url

    @field_validator("job_token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("job_token is empty")
        return value

    @field_validator("agent", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionInputs:
        """Read ``INPUT_JOB_ID``, ``INPUT_BOT_URL``, ``INPUT_JOB_TOKEN``, ``INPUT_AGENT``."""
        values: dict[str, str] = {}
        for name in ("job_id", "bot_url", "job_token", "agent", "workers"):
            raw = env.get(f"INPUT_{name.upper()}")
            if raw is not None and (raw.strip() or name == "job_token"):
                values[name] = raw.strip()
        return cls.model_validate(values)


class RunContext(BaseModel):
    """The parts of the Actions runner's environment the action uses."""

    model_config = ConfigDict(frozen=True)

    repository: str | None = None
    run_id: str | None = None
    run_attempt: str | None = None
    server_url: str = "https://github.com"
    output_file: Path | None = None
    summary_file: Path | None = None
    temp_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunContext:
        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            repository=env.get("GITHUB_REPOSITORY") or None,
            run_id=env.get("GITHUB_RUN_ID") or None,
            run_attempt=env.get("GITHUB_RUN_ATTEMPT") or None,
            server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            output_file=path("GITHUB_OUTPUT"),
            summary_file=path("GITHUB_STEP_SUMMARY"),
            temp_dir=path("RUNNER_TEMP") or Path(tempfile.gettempdir()),
        )

    @property
    def worker(self) -> str:
        """The worker name the bot records: ``actions/<run id>``."""
        return f"actions/{self.run_id or 'local'}"
