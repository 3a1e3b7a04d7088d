"""The ``stoneforge`` command line (also ``python -m stoneforge``).

Each sub-command only wires settings to the package doing the work: ``bot``, ``runner`` and
``registration-token`` to ``bot/`` and ``runner/``; ``fakehub`` to ``fakehub/``; ``demo`` to
``demo/``. It lives outside ``bot/`` so that ``bot`` and ``runner`` never import ``fakehub``; each
sub-command imports its package lazily, so ``stoneforge bot`` loads neither fakehub nor the demo.
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
        settings = BotSettings()  # filled from STONEFORGE_* variables
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


runner_app = typer.Typer(help="Run agents for the bot, or register this machine as a runner.")
app.add_typer(runner_app, name="runner")


@runner_app.callback(invoke_without_command=True)
def runner(
    ctx: typer.Context,
    bot_url: Annotated[str | None, typer.Option(help="the bot's base URL")] = None,
    token: Annotated[
        str | None,
        typer.Option(help="runner token (default: STONEFORGE_RUNNER_TOKEN or the saved one)"),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="tasks run in parallel")] = None,
    work_dir: Annotated[Path, typer.Option(help="mirrors and worktrees live here")] = Path(
        ".stoneforge/runner"
    ),
    name: Annotated[str | None, typer.Option(help="this runner's name")] = None,
    agent: Annotated[str | None, typer.Option(help="force an agent adapter")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="saved registration (default ~/.config/stoneforge/runner.json)"),
    ] = None,
    disk_budget_mb: Annotated[
        int | None,
        typer.Option(
            help="past this much disk under --work-dir, idle worktrees and then idle mirrors "
            "are evicted, least recently used first (default: no limit)",
            envvar="STONEFORGE_RUNNER_DISK_BUDGET_MB",
            min=1,
        ),
    ] = None,
    shutdown_grace_s: Annotated[
        float,
        typer.Option(
            help="on SIGTERM, how long running agents may finish before their work in progress "
            "is pushed and handed off (keep it under your service manager's stop timeout)",
            envvar="STONEFORGE_RUNNER_SHUTDOWN_GRACE_S",
            min=0,
        ),
    ] = 20.0,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Claim tasks from the bot and run agents in git worktrees."""
    if ctx.invoked_subcommand is not None:
        return
    from runner.loop import Runner
    from runner.registration import load_credentials

    _logging(log_level)
    saved = load_credentials(config) if not token else None
    token = (
        token
        or os.environ.get("STONEFORGE_RUNNER_TOKEN")
        or (saved.runner_token if saved else None)
    )
    bot_url = bot_url or (saved.bot_url if saved else None)
    if not token or not bot_url:
        typer.echo(
            "stoneforge runner: need --bot-url and a token (--token, STONEFORGE_RUNNER_TOKEN, "
            "or `stoneforge runner register` first)",
            err=True,
        )
        raise typer.Exit(2)
    count = workers or (saved.capacity if saved else 3)
    runner_name = name or (saved.name if saved else "runner-1")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        work_dir.mkdir(parents=True, exist_ok=True)
        await Runner(
            bot_url,
            token,
            workers=count,
            work_dir=work_dir.resolve(),
            name=runner_name,
            labels=list(saved.labels) if saved else None,
            capacity=saved.capacity if saved else None,
            agent_override=agent,
            disk_budget_mb=disk_budget_mb,
            shutdown_grace_s=shutdown_grace_s,
        ).run(stop)

    asyncio.run(main())


@runner_app.command("register")
def runner_register(
    bot_url: Annotated[str, typer.Option(help="the bot's base URL")],
    registration_token: Annotated[
        str,
        typer.Option(
            help="a token from `stoneforge registration-token`",
            envvar="STONEFORGE_REGISTRATION_TOKEN",
        ),
    ],
    name: Annotated[str, typer.Option(help="this runner's name")] = "runner-1",
    label: Annotated[list[str] | None, typer.Option(help="a runner label (repeatable)")] = None,
    capacity: Annotated[int, typer.Option(help="tasks this runner runs at once")] = 3,
    config: Annotated[Path | None, typer.Option(help="where to save the credentials")] = None,
) -> None:
    """Exchange a one-time registration token for this runner's own token, and save it."""
    from runner.registration import RegistrationError, default_config_path, register

    path = config or default_config_path()
    try:
        creds = register(
            bot_url,
            registration_token,
            name=name,
            labels=list(label or []),
            capacity=capacity,
            config_path=path,
        )
    except RegistrationError as exc:
        typer.echo(f"stoneforge runner register: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"registered runner {creds.name} ({creds.runner_id}); credentials saved to {path}")


@app.command("registration-token")
def registration_token(
    ttl_hours: Annotated[float, typer.Option(help="how long the token stays valid")] = 24.0,
) -> None:
    """Create a one-time runner registration token (needs STONEFORGE_DATABASE_URL)."""
    from bot.runner_api import new_registration_token
    from bot.store import Store

    store = Store(os.environ.get("STONEFORGE_DATABASE_URL", "sqlite:///stoneforge.db"))
    try:
        typer.echo(new_registration_token(store, ttl_s=ttl_hours * 3600))
    finally:
        store.close()


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
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="start from one epic: /stoneforge plan, then /stoneforge approve, then the plan",
        ),
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="run only these sprint issues (comma-separated keys, e.g. logging,jwt) and"
            " what they are blocked by",
        ),
    ] = None,
) -> None:
    """Show the whole pipeline on this machine: fakehub, the bot, a runner, a sprint of issues.

    With ``--plan``: one epic issue, planned by the director into sub-issues, approved by the
    maintainer, and run to completion.

    The runner gets the agent's own credentials and executable override from this environment
    (what its adapter declares), nothing else of it; without a working, logged-in CLI the demo
    stops before it starts anything.
    """
    from demo.run import run_demo
    from stoneforge.agent_env import agent_env, check_agent

    problem = check_agent(agent, os.environ)
    if problem:
        typer.echo(f"stoneforge demo --agent {agent}: {problem}", err=True)
        raise typer.Exit(2)
    if plan:
        from demo.plan_run import run_plan_demo

        code = run_plan_demo(
            workers=workers,
            report=report,
            timeout=timeout,
            agent=agent,
            work_dir=work_dir,
            runner_env=agent_env(agent, os.environ),
        )
        raise typer.Exit(code)
    from demo.sample import SPRINT, sprint_subset

    try:
        sprint = sprint_subset(SPRINT, only.split(",")) if only else SPRINT
    except KeyError as exc:
        keys = ", ".join(item.key for item in SPRINT)
        typer.echo(f"stoneforge demo --only: no sprint issue {exc} (the keys: {keys})", err=True)
        raise typer.Exit(2) from None
    code = run_demo(
        workers=workers,
        report=report,
        timeout=timeout,
        agent=agent,
        work_dir=work_dir,
        runner_env=agent_env(agent, os.environ),
        sprint=sprint,
    )
    raise typer.Exit(code)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
