"""`model`: the catalog of models the gateway routes to, each with its lowest tier and its
upstream targets (`model target add|remove|list`)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import catalog, ops, targets
from gateway.cli.context import By, actor, known_tier, with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail
from gateway.settings import Settings

app = typer.Typer(help="The model catalog.", no_args_is_help=True)
target_app = typer.Typer(
    help="A model's upstream targets: where its requests go, by weight.", no_args_is_help=True
)
app.add_typer(target_app, name="target")


@app.command()
def add(
    name: str,
    tier: Annotated[str, typer.Option(help="Lowest tier that may use it.")],
    upstream: Annotated[
        str | None,
        typer.Option(
            help="Base URL of an OpenAI-compatible server, e.g. http://vllm:8000/v1; it "
            "becomes the model's only target (use `model target add` for several)."
        ),
    ] = None,
    upstream_model: Annotated[
        str | None, typer.Option(help="Its name at the upstream (default: NAME).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a model to the catalog, or update its tier (and, with --upstream, its upstream)."""
    known_tier(tier)
    up = Settings().upstream
    allowed = up.allowed_hosts
    if upstream is not None:
        try:
            ops.check_upstream_url(
                upstream, allowed_hosts=allowed, allowed_schemes=up.allowed_schemes
            )
        except ValueError as exc:
            fail(str(exc))

    async def work(engine: AsyncEngine) -> None:
        entry = await ops.add_model(
            engine,
            name=name,
            upstream_url=upstream,
            upstream_model=upstream_model or name,
            tier_floor=tier,
            allowed_hosts=allowed,
            allowed_schemes=up.allowed_schemes,
        )
        emit({"model": entry.name, "tier_floor": entry.tier_floor}, as_json=as_json)

    with_engine(work)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List the catalog, with each model's targets (name=weight)."""

    async def work(engine: AsyncEngine) -> None:
        by_model: dict[str, list[str]] = {}
        for t in await targets.list_targets(engine):
            if t.enabled:
                by_model.setdefault(t.model, []).append(f"{t.name}={t.weight}")
        rows = [
            {
                "model": m.name,
                "tier_floor": m.tier_floor,
                "targets": by_model.get(m.name, []),
                "enabled": m.enabled,
            }
            for m in await ops.list_models(engine)
        ]
        emit_rows(rows, columns=["model", "tier_floor", "targets", "enabled"], as_json=as_json)

    with_engine(work)


@target_app.command("add")
def target_add(
    model: str,
    url: Annotated[str, typer.Option(help="Base URL, e.g. http://vllm-a:8000/v1.")],
    name: Annotated[
        str | None, typer.Option(help="Its name in audit rows and metrics (default: host:port).")
    ] = None,
    upstream_model: Annotated[
        str | None, typer.Option(help="The model's name at this upstream (default: MODEL).")
    ] = None,
    weight: Annotated[
        int, typer.Option(help="Share of the traffic; 0 = fallback only, used when no other can.")
    ] = 1,
    credential: Annotated[
        str | None,
        typer.Option(
            help="Where its API key is: env:VARIABLE or file:/path (read by the gateway; "
            "the key itself is never stored). Default: the global upstream_api_key."
        ),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="An extra request header NAME=VALUE (repeatable).")
    ] = None,
    disabled: Annotated[bool, typer.Option(help="Add it out of rotation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add an upstream target to a model, or update the target of that name."""
    headers: dict[str, str] = {}
    for item in header or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--header must be NAME=VALUE; got {item!r}")
        headers[key.strip()] = value.strip()

    async def work(engine: AsyncEngine) -> None:
        try:
            target = await targets.add_target(
                engine,
                model=model,
                url=url,
                name=name,
                upstream_model=upstream_model,
                weight=weight,
                credential=credential,
                headers=headers,
                enabled=not disabled,
                allowed_hosts=Settings().upstream.allowed_hosts,
                allowed_schemes=Settings().upstream.allowed_schemes,
            )
        except (ValueError, LookupError) as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))
        emit(targets.public(target).model_dump(), as_json=as_json)

    with_engine(work)


@target_app.command("remove")
def target_remove(model: str, name: str, as_json: JsonFlag = False) -> None:
    """Remove a target from a model (a model left without one answers 503)."""

    async def work(engine: AsyncEngine) -> None:
        try:
            await targets.remove_target(engine, model=model, name=name)
        except LookupError as exc:
            fail(str(exc.args[0]))
        emit({"model": model, "removed": name}, as_json=as_json)

    with_engine(work)


@target_app.command("list")
def target_list(
    model: Annotated[str | None, typer.Argument(help="Only this model's targets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List upstream targets: URL, weight, credential reference, extra header names."""

    async def work(engine: AsyncEngine) -> None:
        found = [targets.public(t) for t in await targets.list_targets(engine, model=model)]
        if as_json:
            emit_rows([t.model_dump() for t in found], columns=[], as_json=True)
            return
        rows = [
            {
                "model": t.model,
                "target": t.name,
                "url": t.url,
                "upstream_model": t.upstream_model,
                "weight": t.weight,
                "credential": t.credential or "(global)",
                "headers": sorted(t.headers),  # names only: values stay off the screen
                "enabled": t.enabled,
            }
            for t in found
        ]
        columns = ["model", "target", "url", "upstream_model", "weight", "credential"]
        emit_rows(rows, columns=[*columns, "headers", "enabled"], as_json=False)

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
