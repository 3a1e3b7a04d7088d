"""Benchmark webhook intake: signed deliveries into a real bot process, acknowledgement latency.

    python bench/intake.py --json FILE [--n 5000] [--concurrency 16] [--warmup 100]
                           [--history N]

Starts ``python -m stoneforge bot --port P --log-level warning`` with a temporary SQLite database, a
freshly generated RSA key, a webhook secret, ``STONEFORGE_GITHUB_API_URL`` pointing at a closed
local port (the bot only logs a warning) and a one-hour reconcile interval. After ``/healthz``
answers, it sends ``--warmup`` deliveries, then ``--n`` measured ones, ``--concurrency`` at a
time over keep-alive connections (``--client raw``, the default, or one httpx pool with
``--client httpx``). Every delivery is a ``star`` event (GitHub's published example, ~6 KB) with
a unique ``X-GitHub-Delivery``, so the handler makes no GitHub call. Each latency runs from
sending the request to reading the 202.

It then stops the bot and counts the rows of ``deliveries`` in the SQLite file itself:
``lost = sent - stored`` over every delivery sent, warm-up included. Prints and writes
``{"deliveries_per_s", "p50_ms", "p99_ms", "lost", "n", "concurrency", ...}``.
Targets (2 cores, loopback): >= 1000 deliveries/s, p99 <= 50 ms, lost 0.
``--github stub`` replaces the closed port with a local server answering 404 (see bench/README.md).
``--history N`` first puts N merged tasks in the database (``bench/history.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history import seed_history  # noqa: E402
from bot.signature import sign  # noqa: E402

PAYLOAD = ROOT / "tests" / "fixtures" / "webhooks" / "star" / "created.json"
SECRET = "bench-intake-secret"
ERROR_LINE = re.compile(r'\bERROR\b|"level": "error"')  # plain or JSON log lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux ``/proc``), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class GitHubStub(ThreadingHTTPServer):
    """A "GitHub" on 127.0.0.1 that answers 404 to everything and counts the requests."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                stub.requests += 1
                body = b'{"message": "Not Found"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, name="github-stub", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v3"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


def start_bot(port: int, db: Path, log: Path, github_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STONEFORGE_APP_ID": "1",
        "STONEFORGE_PRIVATE_KEY": private_key_pem(),
        "STONEFORGE_WEBHOOK_SECRET": SECRET,
        "STONEFORGE_DATABASE_URL": f"sqlite:///{db}",
        "STONEFORGE_GITHUB_API_URL": github_url,
        "STONEFORGE_RECONCILE_INTERVAL_S": "3600",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "stoneforge", "bot", "--port", str(port)]
    command += ["--log-level", "warning"]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bot exited with {proc.returncode} before /healthz:\n{tail}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"bot did not answer /healthz within {timeout} s")


def stop_bot(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _headers(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": "star",
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": sign(SECRET, body),
    }


async def send_httpx(
    url: str, n: int, concurrency: int, body: bytes
) -> tuple[list[float], float, dict[int, int]]:
    """Send ``n`` deliveries through one httpx.AsyncClient pool of ``concurrency`` connections.

    Returns latencies (s), wall time (s) and a count per status code (0: transport error).
    """
    headers = _headers(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    codes: dict[int, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def one() -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/webhooks/github",
                        content=body,
                        headers={**headers, "X-GitHub-Delivery": str(uuid.uuid4())},
                    )
                    code = response.status_code
                except httpx.HTTPError:
                    code = 0
                latencies.append(time.perf_counter() - started)
                codes[code] = codes.get(code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - started
    return latencies, wall, codes


async def send_raw(
    url: str, n: int, concurrency: int, body: bytes
) -> tuple[list[float], float, dict[int, int]]:
    """Like ``send_httpx``, over ``concurrency`` plain keep-alive HTTP/1.1 connections.

    A minimal client (asyncio streams, Content-Length bodies only): httpx spends 2-6 ms of CPU
    per request here, so on a 2-core box it would measure itself rather than the bot.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    fixed = "".join(f"{k}: {v}\r\n" for k, v in _headers(body).items())
    fixed += f"Host: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    latencies: list[float] = []
    codes: dict[int, int] = {}
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while remaining > 0:
                remaining -= 1
                head = f"POST /webhooks/github HTTP/1.1\r\n{fixed}X-GitHub-Delivery: {uuid.uuid4()}"
                started = time.perf_counter()
                writer.write(f"{head}\r\n\r\n".encode() + body)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                code = int(status.split()[1]) if status.startswith(b"HTTP/") else 0
                codes[code] = codes.get(code, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, codes


SENDERS = {"raw": send_raw, "httpx": send_httpx}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(
    n: int,
    concurrency: int,
    warmup: int,
    github: str = "closed",
    client: str = "raw",
    history: int = 0,
) -> dict[str, Any]:
    send_all = SENDERS[client]
    body = json.dumps(json.loads(PAYLOAD.read_text()), separators=(",", ":")).encode()
    stub = GitHubStub() if github == "stub" else None
    github_url = stub.url if stub else f"http://127.0.0.1:{free_port()}/api/v3"  # nobody listens
    github_calls = None
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        db = Path(tmp) / "bot.db"
        log = Path(tmp) / "bot.log"
        if history:
            seed_history(f"sqlite:///{db}", "octo/history", history)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_bot(port, db, log, github_url)
        try:
            wait_healthy(url, proc, log)
            if warmup:
                asyncio.run(send_all(url, warmup, min(concurrency, warmup), body))
            before = stub.requests if stub else 0
            bot_cpu = cpu_seconds(proc.pid)
            own_cpu = time.process_time()
            latencies, wall, codes = asyncio.run(send_all(url, n, concurrency, body))
            bot_cpu = cpu_seconds(proc.pid) - bot_cpu
            own_cpu = time.process_time() - own_cpu
            github_calls = stub.requests - before if stub else None
        finally:
            stop_bot(proc)
            if stub:
                stub.stop()
        with sqlite3.connect(db) as conn:
            stored = int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
        errors = [line for line in log.read_text().splitlines() if ERROR_LINE.search(line)]
    sent = n + warmup
    return {
        "deliveries_per_s": round(n / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "lost": sent - stored,
        "n": n,
        "concurrency": concurrency,
        "warmup": warmup,
        "payload_bytes": len(body),
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "bot_cpu_s": round(bot_cpu, 2),
        "client_cpu_s": round(own_cpu, 2),
        "wall_s": round(wall, 2),
        "bot_log_errors": len(errors),
        "client": client,
        "github": github,
        "github_calls_during_run": github_calls,
        "history": history,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the result here")
    parser.add_argument("--n", type=int, default=5000, help="measured deliveries")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=100, help="deliveries sent first, unmeasured")
    parser.add_argument(
        "--github",
        choices=("closed", "stub"),
        default="closed",
        help="closed: GitHub URL is a closed local port; stub: a local server answering 404",
    )
    parser.add_argument(
        "--client",
        choices=sorted(SENDERS),
        default="raw",
        help="load generator: raw keep-alive sockets (default) or one httpx.AsyncClient pool",
    )
    parser.add_argument(
        "--history", type=int, default=0, help="merged tasks already in the store (default 0)"
    )
    args = parser.parse_args(argv)
    result = run(args.n, args.concurrency, args.warmup, args.github, args.client, args.history)
    text = json.dumps(result, indent=2)
    args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
