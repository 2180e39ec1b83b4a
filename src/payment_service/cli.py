"""The ``payment-service`` command.

    payment-service dev [--port 8000] [--no-worker]   everything for local work (``make run``)
    payment-service serve [--host H] [--port P]       the API (uvicorn, graceful shutdown)
    payment-service worker                            outbox relay, consumers, scheduled jobs
    payment-service migrate [--revision head]         alembic upgrade
    payment-service token user <user-id>              a dev JWT (also: service <name>, admin)

Configuration comes from ``PAYMENT_*`` variables (see :mod:`payment_service.config`).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import structlog
import typer

from payment_service.config import Settings, get_settings

if TYPE_CHECKING:
    from alembic.config import Config

log = structlog.get_logger(__name__)

app = typer.Typer(
    name="payment-service",
    help="Payment Service of the game platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Mint a development JWT signed with the configured key; prints it.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _configure_logging(settings: Settings) -> None:
    from payment_service.logging import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default: PAYMENT_HTTP__HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: PAYMENT_HTTP__PORT)")] = None,
) -> None:
    """Run the API with uvicorn; SIGTERM/SIGINT drain and stop it gracefully."""
    from payment_service.server import serve as run_server

    run_server(get_settings(), host=host, port=port)


@app.command()
def worker() -> None:
    """Run the background worker until SIGTERM/SIGINT."""
    import uvloop

    from payment_service.worker import run_worker

    settings = get_settings()
    _configure_logging(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("worker_started", env=str(settings.env))
        await run_worker(settings, stop=stop)
        log.info("worker_stopped")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def alembic_config(url: str) -> Config:
    """Alembic config for the checkout's ``alembic.ini`` (or its ``migrations/`` folder)."""
    from alembic.config import Config

    from payment_service.devstack import project_root

    root = project_root()
    ini = root / "alembic.ini"
    if ini.is_file():
        cfg = Config(str(ini))
    else:
        migrations = root / "migrations"
        if not migrations.is_dir():
            raise typer.BadParameter(f"neither {ini} nor {migrations} exists; run from the project checkout")
        cfg = Config()
        cfg.set_main_option("script_location", str(migrations))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@app.command()
def migrate(revision: Annotated[str, typer.Option(help="Target revision")] = "heads") -> None:
    """Apply the database migrations (alembic upgrade) to PAYMENT_DB__URL."""
    from alembic import command

    settings = get_settings()
    _configure_logging(settings)
    command.upgrade(alembic_config(settings.db.url.get_secret_value()), revision)
    typer.echo(f"database migrated to {revision}", err=True)


# --- token ---------------------------------------------------------------------------------------

EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="Extra env file read after .env (default: .run/dev.env written by `payment-service dev`)",
    ),
]
Scopes = Annotated[list[str] | None, typer.Option("--scope", "-s", help="A scope; repeat for more")]
Ttl = Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in seconds")]


def token_settings(env_file: Path | None = None) -> Settings:
    """Settings from the environment, ``.env`` and the dev env file (the dev stack's secret).

    Variables in the environment win over both files, the dev env file over ``.env``.
    """
    from payment_service.devstack import DEV_ENV_FILE, default_run_dir

    path = env_file or default_run_dir() / DEV_ENV_FILE
    if env_file is not None and not env_file.is_file():
        raise typer.BadParameter(f"{env_file} does not exist", param_hint="--env-file")
    files = (".env", str(path)) if path.is_file() else (".env",)
    return Settings(_env_file=files)


def _mint(kind: str, subject: str, scopes: list[str] | None, ttl: int, env_file: Path | None) -> None:
    from payment_service.auth import PrincipalKind, mint_token

    settings = token_settings(env_file)
    try:
        token = mint_token(settings.auth, kind=PrincipalKind(kind), subject=subject, scopes=scopes, ttl_seconds=ttl)
    except RuntimeError as exc:  # no signing key configured
        typer.echo(f"error: {exc} (run `payment-service dev` once, or set it)", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


@token_app.command("user")
def token_user(
    user_id: Annotated[str, typer.Argument(help="Platform user id (the token's sub)")],
    scope: Scopes = None,
    ttl: Ttl = 3600,
    env_file: EnvFile = None,
) -> None:
    """A user token (no --scope: the default user scopes)."""
    _mint("user", user_id, scope, ttl, env_file)


@token_app.command("service")
def token_service(
    name: Annotated[str, typer.Argument(help="Service name: social, streaming, user or game-catalog")],
    scope: Scopes = None,
    ttl: Ttl = 3600,
    env_file: EnvFile = None,
) -> None:
    """An internal service token with the given scopes."""
    _mint("service", name, scope, ttl, env_file)


@token_app.command("admin")
def token_admin(
    scope: Scopes = None,
    subject: Annotated[str, typer.Option(help="Operator id")] = "admin-dev",
    ttl: Ttl = 3600,
    env_file: EnvFile = None,
) -> None:
    """A back-office operator token (no --scope: all scopes, '*')."""
    _mint("admin", subject, scope or ["*"], ttl, env_file)


# --- dev -----------------------------------------------------------------------------------------


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Start the worker")] = True,
    api_processes: Annotated[
        int, typer.Option(min=1, max=16, help="API processes sharing the port (SO_REUSEPORT)")
    ] = 1,
    run_dir: Annotated[
        Path | None, typer.Option(help="State folder: dev.env, stack.env, logs (default: .run/ in the checkout)")
    ] = None,
) -> None:
    """Start Postgres/Redis (if needed), Tansu, OpenBao, migrations, the API and the worker; Ctrl-C stops all."""
    from payment_service.devstack import DevOptions, default_run_dir, run_dev

    options = DevOptions(
        port=port, worker=worker, api_processes=api_processes, run_dir=(run_dir or default_run_dir()).resolve()
    )
    raise typer.Exit(run_dev(options))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the benchmarks from the checkout (ratios to pgbench measured in the same run).

    Extra arguments go to the service benchmark, the package ``benchmarks.service`` run as
    ``python -m benchmarks.service`` (e.g. ``--smoke``, ``--seconds 60``).
    """
    import subprocess
    import sys

    from payment_service.devstack import project_root

    root = project_root()
    smoke = ["--smoke"] if "--smoke" in ctx.args else []
    ledger = subprocess.run([sys.executable, str(root / "benchmarks" / "ledger.py"), *smoke], cwd=root, check=False)
    service = subprocess.run([sys.executable, "-m", "benchmarks.service", *ctx.args], cwd=root, check=False)
    raise typer.Exit(ledger.returncode or service.returncode)


DEMO_PLAYER = "demo-player"
"""The user whose wallet ``seed-demo`` funds (``payment-service token user demo-player``)."""


@app.command("seed-demo")
def seed_demo() -> None:
    """Demo data for a local stack: fund the demo player's wallet with 5 000 ₽. Safe to run twice."""
    import asyncio

    from payment_service.db import create_engine, create_sessionmaker, transaction
    from payment_service.kit.clock import SystemClock
    from payment_service.kit.money import Money
    from payment_service.wallet import service as wallet_service

    settings = get_settings()
    if settings.is_production:
        raise typer.BadParameter("refusing to seed demo data in production")

    async def run() -> None:
        engine = create_engine(settings.db, application_name="payment-service-seed")
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await wallet_service.adjust(
                    session,
                    user_id=DEMO_PLAYER,
                    amount=Money(5_000_00, settings.wallet.currency),
                    credit=True,
                    note="demo data",
                    operator="seed-demo",
                    idempotency_key=f"demo:seed:{DEMO_PLAYER}",
                    settings=settings.wallet,
                    now=SystemClock().now(),
                )
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo(f"demo data: wallet of '{DEMO_PLAYER}' funded with 5000.00 {settings.wallet.currency}")


if __name__ == "__main__":
    app()
