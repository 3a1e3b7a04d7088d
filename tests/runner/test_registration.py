"""Runner registration against a tiny in-test bot: the one-time token, the 0600 config file."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from runner.registration import (
    RegistrationError,
    default_config_path,
    load_credentials,
    register,
)

REGISTRATION_TOKEN = "sfreg_one_time_decoy"
RUNNER_TOKEN = "sfrun_long_lived_decoy"


class Bot:
    def __init__(self) -> None:
        self.unused = {REGISTRATION_TOKEN}
        self.requests: list[dict[str, Any]] = []
        self.status: int | None = None  # force an answer
        self.app = FastAPI()
        self.app.post("/runner/register")(self.register)

    async def register(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.status is not None:
            return Response(status_code=self.status)
        if body.get("registration_token") not in self.unused:
            return Response(status_code=401)
        self.unused.discard(body["registration_token"])
        answer = {"runner_id": f"r-{len(self.requests)}", "runner_token": RUNNER_TOKEN}
        return Response(json.dumps(answer), status_code=201, media_type="application/json")


@pytest.fixture
async def bot() -> AsyncIterator[tuple[Bot, str]]:
    bot = Bot()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(bot.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    yield bot, f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


async def test_register_saves_private_credentials(bot: tuple[Bot, str], tmp_path: Path) -> None:
    fake, url = bot
    path = tmp_path / "deep" / "config" / "runner.json"
    creds = await asyncio.to_thread(
        register, url, REGISTRATION_TOKEN, name="gpu-box", labels=["linux", "gpu"], capacity=4,
        config_path=path,
    )  # fmt: skip
    assert fake.requests == [
        {
            "registration_token": REGISTRATION_TOKEN,
            "name": "gpu-box",
            "labels": ["linux", "gpu"],
            "capacity": 4,
            "protocol": 1,
        }
    ]
    assert creds.runner_id == "r-1"
    assert creds.runner_token == RUNNER_TOKEN
    assert creds.bot_url == url.rstrip("/")
    assert RUNNER_TOKEN not in repr(creds)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "bot_url": url.rstrip("/"),
        "runner_id": "r-1",
        "runner_token": RUNNER_TOKEN,
        "name": "gpu-box",
        "labels": ["linux", "gpu"],
        "capacity": 4,
    }
    assert load_credentials(path) == creds
    assert [p.name for p in path.parent.iterdir()] == ["runner.json"]  # no temp file left


async def test_used_registration_token_is_refused_clearly(
    bot: tuple[Bot, str], tmp_path: Path
) -> None:
    _, url = bot
    path = tmp_path / "runner.json"
    kwargs: dict[str, Any] = {"name": "a", "labels": [], "capacity": 1, "config_path": path}
    await asyncio.to_thread(register, url, REGISTRATION_TOKEN, **kwargs)
    first = path.read_text()
    with pytest.raises(RegistrationError, match="already used") as err:
        await asyncio.to_thread(register, url, REGISTRATION_TOKEN, **kwargs)
    assert REGISTRATION_TOKEN not in str(err.value)
    assert path.read_text() == first  # the saved credentials are untouched


async def test_bot_errors_and_bad_answers(bot: tuple[Bot, str], tmp_path: Path) -> None:
    fake, url = bot
    path = tmp_path / "runner.json"
    kwargs: dict[str, Any] = {"name": "a", "labels": [], "capacity": 1, "config_path": path}
    fake.status = 500
    with pytest.raises(RegistrationError, match="HTTP 500"):
        await asyncio.to_thread(register, url, REGISTRATION_TOKEN, **kwargs)
    fake.status = 201  # no body
    with pytest.raises(RegistrationError, match="runner_id"):
        await asyncio.to_thread(register, url, REGISTRATION_TOKEN, **kwargs)
    assert not path.exists()


def test_unreachable_bot(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(RegistrationError, match="cannot reach"):
        register(f"http://127.0.0.1:{port}", REGISTRATION_TOKEN, name="a", labels=[],
                 capacity=1, config_path=tmp_path / "r.json", timeout_s=5)  # fmt: skip


def test_load_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runner.json"
    assert load_credentials(path) is None
    path.write_text("{not json")
    with pytest.raises(RegistrationError, match="cannot read"):
        load_credentials(path)
    path.write_text(json.dumps({"bot_url": "http://x", "runner_id": "r"}))
    with pytest.raises(RegistrationError, match="register again"):
        load_credentials(path)
    monkeypatch.setenv("STONEFORGE_RUNNER_CONFIG", str(tmp_path / "env.json"))
    assert default_config_path() == tmp_path / "env.json"
    monkeypatch.delenv("STONEFORGE_RUNNER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_config_path() == tmp_path / "home" / ".config" / "stoneforge" / "runner.json"
