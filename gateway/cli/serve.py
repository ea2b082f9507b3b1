"""`serve`, `migrate` and `demo`: the commands that run or prepare the gateway."""

from __future__ import annotations

import socket
from typing import Annotated
from urllib.parse import urlsplit

import typer
from sqlalchemy.engine.url import make_url

from gateway.cli.output import fail
from gateway.settings import Settings

app = typer.Typer()

Port = Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Port = 8080,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes on the port (more than 1 needs shared limits storage, "
            "e.g. redis://).",
        ),
    ] = 1,
) -> None:
    """Run the gateway (migrates the database first, unless migrate_on_start is off)."""
    # Imported here: `tac-gateway --help` and the admin commands need not load the app.
    import asyncio

    from gateway.app import create_app, prepare_shared_state
    from gateway.db.migrate import upgrade
    from gateway.serve import run_server, run_workers

    settings = Settings()
    if workers > 1 and settings.rate_limit_storage.removeprefix("async+").startswith("memory"):
        # Each process would count alone: every limit would be `workers` times looser.
        fail("--workers above 1 needs shared limits storage: set rate_limit_storage=redis://...")
    require_free_port(host, port)
    # The chart migrates once in a hook Job; replicas set TACGW_MIGRATE_ON_START=false.
    if settings.migrate_on_start:
        upgrade(settings.database_url)
    if workers > 1:
        try:
            asyncio.run(prepare_shared_state(settings))
        except ValueError as exc:  # a setting the first start needs (e.g. the KEK)
            fail(str(exc))
        print(startup_line(settings, host=host, port=port), f"({workers} workers)", flush=True)
        run_workers(host=host, port=port, workers=workers, settings=settings)
        return
    app_ = create_app(settings, served=True)
    print(startup_line(settings, host=host, port=port), flush=True)
    run_server(app_, host=host, port=port, settings=settings)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from gateway.db.migrate import upgrade

    upgrade(Settings().database_url)


@app.command()
def demo(
    port: Port = 8080,
    upstream_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the demo model server.")
    ] = 8081,
) -> None:
    """Run the quickstart: the demo model server and the gateway on SQLite in ./var."""
    from gateway.demo.run import run_demo

    if port == upstream_port:
        fail("--port and --upstream-port must differ")
    for p in (port, upstream_port):
        require_free_port("127.0.0.1", p)
    run_demo(port=port, upstream_port=upstream_port)


def require_free_port(host: str, port: int) -> None:
    """Fail with one line, before anything is started or written, if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option uvicorn sets, so a port in TIME_WAIT is not reported as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host} port {port}: {exc.strerror or exc}")


def startup_line(settings: Settings, *, host: str, port: int) -> str:
    """URL, database kind, policy engine and limits storage: kinds only, never credentials."""
    shown_host = f"[{host}]" if ":" in host else host
    database = make_url(settings.database_url).get_backend_name()
    # "async+redis://user:pw@host" -> "redis": the scheme names the kind.
    limits = urlsplit(settings.rate_limit_storage).scheme.removeprefix("async+") or "memory"
    return (
        f"tac-gateway serving http://{shown_host}:{port}"
        f" (database: {database}, policy: {settings.policy_engine}, limits: {limits})"
    )
