"""``python -m fakehub [--host H] [--port N] [--root DIR]``: run fakehub in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path

from fakehub.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fakehub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--root", type=Path, default=None, help="data directory (default: temp)")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.root)


if __name__ == "__main__":
    main()
