"""`model`: the catalog of models the gateway routes to, each with its lowest tier."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import catalog, ops
from gateway.cli.context import By, actor, known_tier, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail

app = typer.Typer(help="The model catalog.", no_args_is_help=True)


@app.command()
def add(
    name: str,
    upstream: Annotated[
        str, typer.Option(help="Base URL of an OpenAI-compatible server, e.g. http://vllm:8000/v1.")
    ],
    tier: Annotated[str, typer.Option(help="Lowest tier that may use it.")],
    upstream_model: Annotated[
        str | None, typer.Option(help="Its name at the upstream (default: NAME).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a model to the catalog, or update it."""
    known_tier(tier)
    try:
        ops.check_upstream_url(upstream)
    except ValueError as exc:
        fail(str(exc))

    async def work(engine: AsyncEngine) -> None:
        entry = await ops.add_model(
            engine,
            name=name,
            upstream_url=upstream,
            upstream_model=upstream_model or name,
            tier_floor=tier,
        )
        emit({"model": entry.name, "tier_floor": entry.tier_floor}, as_json=as_json)

    with_engine(work)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List the catalog."""

    async def work(engine: AsyncEngine) -> None:
        rows = [
            {
                "model": m.name,
                "tier_floor": m.tier_floor,
                "upstream": m.upstream_url,
                "upstream_model": m.upstream_model,
                "enabled": m.enabled,
            }
            for m in await ops.list_models(engine)
        ]
        columns = ["model", "tier_floor", "upstream", "upstream_model", "enabled"]
        emit_rows(rows, columns=columns, as_json=as_json)

    with_engine(work)


@app.command()
def disable(name: str, by: By = "cli-admin", as_json: JsonFlag = False) -> None:
    """Stop routing to a model (kept in the catalog; effective within catalog_ttl_s)."""

    async def work(engine: AsyncEngine) -> None:
        entry = await catalog.disable_model(engine, actor=actor(by), name=name)
        emit({"model": entry.name, "enabled": entry.enabled}, as_json=as_json)

    with_engine(work)


@app.command()
def remove(name: str, by: By = "cli-admin", as_json: JsonFlag = False) -> None:
    """Remove a model from the catalog."""

    async def work(engine: AsyncEngine) -> None:
        await catalog.remove_model(engine, actor=actor(by), name=name)
        emit({"model": name, "removed": True}, as_json=as_json)

    with_engine(work)
