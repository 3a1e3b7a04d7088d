"""The ``stoneforge`` command line.

Each sub-command only wires settings to the package doing the work.

This is the one place allowed to import ``fakehub`` (for ``stoneforge fakehub`` and
``stoneforge demo``), and it does so lazily.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Stoneforge for GitHub: issues in, merged pull requests out.", no_args_is_help=True
)


def _logging(level: str) -> None:
    from bot.logs import configure_logging

    configure_logging(level, json_format=os.environ.get("STONEFORGE_LOG_FORMAT", "json") == "json")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


@app.command()
def bot(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run the GitHub App service (webhooks, task graph, runner API, steward)."""
    import uvicorn
    from pydantic import ValidationError

    from bot.app import create_app
    from bot.settings import BotSettings

    _logging(log_level)
    try:
        settings = BotSettings()  # type: ignore[call-arg]  # filled from STONEFORGE_* variables
    except ValidationError as exc:
        missing = ", ".join("STONEFORGE_" + str(e["loc"][0]).upper() for e in exc.errors())
        typer.echo(f"stoneforge bot: invalid or missing settings: {missing}\n{exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        log_config=None,  # keep our JSON handler (and its redaction) for uvicorn's lines too
    )


@app.command()
def runner(
    bot_url: Annotated[str, typer.Option(help="the bot's base URL")],
    token: Annotated[
        str,
        typer.Option(
            help="runner token (or STONEFORGE_RUNNER_TOKEN)", envvar="STONEFORGE_RUNNER_TOKEN"
        ),
    ],
    workers: Annotated[int, typer.Option(help="tasks run in parallel")] = 3,
    work_dir: Annotated[Path, typer.Option(help="mirrors and worktrees live here")] = Path(
        ".stoneforge/runner"
    ),
    name: Annotated[str, typer.Option(help="this runner's name")] = "runner-1",
    agent: Annotated[
        str | None, typer.Option(help="force an agent adapter (claude, script)")
    ] = None,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Claim tasks from the bot and run agents in git worktrees."""
    from runner.loop import Runner

    _logging(log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        work_dir.mkdir(parents=True, exist_ok=True)
        await Runner(
            bot_url,
            token,
            workers=workers,
            work_dir=work_dir.resolve(),
            name=name,
            agent_override=agent,
        ).run(stop)

    asyncio.run(main())


@app.command()
def fakehub(
    port: Annotated[int, typer.Option(help="port to listen on")] = 3000,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    root: Annotated[Path, typer.Option(help="where repositories are stored")] = Path(
        ".stoneforge/fakehub"
    ),
) -> None:
    """Run fakehub, the local stand-in for GitHub, on its own."""
    from fakehub.server import serve

    _logging("info")
    serve(host=host, port=port, root=root)


@app.command()
def demo(
    workers: Annotated[int, typer.Option(help="runner workers (agents in parallel)")] = 3,
    report: Annotated[Path | None, typer.Option(help="write a JSON report here")] = None,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 600.0,
    agent: Annotated[str, typer.Option(help="agent adapter for every task")] = "script",
    work_dir: Annotated[Path | None, typer.Option(help="keep the demo's files here")] = None,
) -> None:
    """Show the whole pipeline on this machine: fakehub, the bot, a runner, a sprint of issues."""
    from fakehub.demo import run_demo

    code = run_demo(workers=workers, report=report, timeout=timeout, agent=agent, work_dir=work_dir)
    raise typer.Exit(code)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
