"""Register a runner with the bot once, and keep its credentials in a private config file.

`POST {bot}/runner/register` trades a one-time registration token (made by a maintainer on the
bot) for a runner id and a long-lived runner token. The credentials are written to a JSON file
readable by the owner only; the tokens never appear in error messages or logs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from bot.core.protocol import Registered, Registration

CONFIG_ENV = "STONEFORGE_RUNNER_CONFIG"


class RegistrationError(Exception):
    """Registration failed, or the saved credentials cannot be read; the message says why."""


@dataclass(frozen=True)
class RunnerCredentials:
    bot_url: str
    runner_id: str
    runner_token: str = field(repr=False)
    name: str
    labels: list[str]
    capacity: int


def default_config_path() -> Path:
    """`$STONEFORGE_RUNNER_CONFIG`, else `~/.config/stoneforge/runner.json`."""
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".config" / "stoneforge" / "runner.json"


def register(
    bot_url: str,
    registration_token: str,
    *,
    name: str,
    labels: list[str],
    capacity: int,
    config_path: Path | None = None,
    timeout_s: float = 30.0,
) -> RunnerCredentials:
    """Register with the bot, save the credentials to `config_path` (mode 0600), return them."""
    bot_url = bot_url.rstrip("/")
    body = Registration(
        registration_token=registration_token, name=name, labels=tuple(labels), capacity=capacity
    )
    try:
        resp = httpx.post(
            f"{bot_url}/runner/register", json=body.model_dump(mode="json"), timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        raise RegistrationError(
            f"cannot reach the bot at {bot_url}: {type(exc).__name__}"
        ) from None
    if resp.status_code == 401:
        raise RegistrationError(
            "the bot rejected the registration token: it is wrong, expired or already used; "
            "ask a maintainer for a new one"
        )
    if resp.status_code not in (200, 201):
        raise RegistrationError(f"registration failed: HTTP {resp.status_code} from {bot_url}")
    if resp.status_code == 422:
        raise RegistrationError(f"the bot refused the registration: {_message(resp)}")
    try:
        answer = Registered.model_validate_json(resp.content)
        runner_id, runner_token = answer.runner_id, answer.runner_token
    except (ValueError, ValidationError):
        raise RegistrationError("the bot's answer has no runner_id and runner_token") from None
    if not runner_token:
        raise RegistrationError("the bot's answer has no runner_id and runner_token")
    creds = RunnerCredentials(bot_url, runner_id, runner_token, name, list(labels), capacity)
    save_credentials(creds, config_path or default_config_path())
    return creds


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("message") or resp.text)
    except (ValueError, AttributeError):
        return resp.text[:300]


def save_credentials(creds: RunnerCredentials, config_path: Path) -> None:
    """Write atomically, created with mode 0600 (never world-readable, even for an instant)."""
    config_path = Path(config_path)
    config_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".runner-", suffix=".json", dir=config_path.parent)
    try:
        with os.fdopen(fd, "w") as fh:  # mkstemp creates the file with mode 0600
            json.dump(asdict(creds), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, config_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_credentials(config_path: Path | None = None) -> RunnerCredentials | None:
    """The saved credentials, or None when the file does not exist."""
    path = Path(config_path) if config_path else default_config_path()
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistrationError(f"cannot read runner config {path}: {type(exc).__name__}") from None
    try:
        return RunnerCredentials(
            bot_url=str(data["bot_url"]),
            runner_id=str(data["runner_id"]),
            runner_token=str(data["runner_token"]),
            name=str(data["name"]),
            labels=[str(label) for label in data.get("labels") or []],
            capacity=int(data["capacity"]),
        )
    except (KeyError, TypeError, ValueError):
        raise RegistrationError(f"runner config {path} is incomplete; register again") from None
