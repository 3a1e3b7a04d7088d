"""The bot as a part of the world: in this process (uvicorn on a thread) or as processes."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from bot.actions_backend import ActionsBackend
from bot.app import create_app
from bot.settings import BotSettings
from tests.harness.waiting import wait_until

RUNNER_TOKEN = "runner-token"  # the in-process bot's runner token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class InProcessBot:
    """The bot's ASGI app, served by uvicorn on a thread of this process."""

    url: str
    app: FastAPI
    database: Path
    server: uvicorn.Server
    thread: threading.Thread

    @classmethod
    def start(cls, sock: socket.socket, settings: BotSettings, database: Path) -> InProcessBot:
        host, port = sock.getsockname()
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_until(lambda: server.started, 10, "the bot to start")
        return cls(f"http://{host}:{port}", app, database, server, thread)

    @property
    def backend(self) -> ActionsBackend:
        backend: ActionsBackend = self.app.state.actions_backend
        return backend

    def processed_all(self) -> bool:
        """True when the bot's deliveries table has none left unprocessed."""
        with sqlite3.connect(self.database, timeout=5) as db:
            (left,) = db.execute(
                "SELECT count(*) FROM deliveries WHERE processed_at IS NULL"
            ).fetchone()
        return bool(left == 0)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_bot_process(
    tmp: Path, name: str, settings: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m stoneforge bot`` with ``STONEFORGE_*`` ``settings``, logging to
    ``tmp/{name}.log``; returns the process and its URL once it answers."""
    port = free_port()
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env |= {"PYTHONUNBUFFERED": "1", **{f"STONEFORGE_{k}": v for k, v in settings.items()}}
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    argv = [sys.executable, "-m", "stoneforge", "bot", "--port", str(port), "--log-level", "info"]
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: healthy(url), 30, f"{name} to start")
    return proc, url
