"""Prove that a CLI reached nothing but its model server: run it under ``strace -e connect``.

``wrap(binary, log)`` writes an executable wrapper that runs the real binary (and every process
it starts) under strace, logging each ``connect()``; point the adapter's ``STONEFORGE_*_BIN`` at
it. ``connections(log)`` lists the internet-socket connects (address, port); unix sockets are not
network. ``strays(log, allowed_ports)`` is what a test asserts empty. A DNS lookup shows up as a
connect to port 53, so a CLI that tries the internet is caught even where the network is closed.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

_INET = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')


def available() -> bool:
    return shutil.which("strace") is not None


def wrap(binary: str | Path, log: Path, wrapper: Path) -> Path:
    """An executable at ``wrapper`` that runs ``binary "$@"`` under strace into ``log``."""
    strace = shutil.which("strace") or "strace"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(strace)} -f -qq -e signal=none -e trace=connect "
        f'-o {shlex.quote(str(log))} -- {shlex.quote(str(binary))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def connections(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    found: list[tuple[str, int]] = []
    for line in log.read_text(errors="replace").splitlines():
        if "connect(" not in line:
            continue
        m = _INET.search(line)
        if m:
            found.append((m.group(2), int(m.group(1))))
            continue
        m6 = _INET6.search(line)
        if m6:
            found.append((m6.group(2), int(m6.group(1))))
    return found


def strays(log: Path, allowed_ports: set[int]) -> list[tuple[str, int]]:
    """Connects to anything but loopback's ``allowed_ports`` (port 0 is a UDP probe: ignored)."""
    loopback = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    return [
        (host, port)
        for host, port in connections(log)
        if port != 0 and not (host in loopback and port in allowed_ports)
    ]
