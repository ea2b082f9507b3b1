"""`keys`: the issuer's signing keys in the database: list them, rotate them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.cli.context import with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc
from gateway.issuer import keystore
from gateway.settings import Settings

app = typer.Typer(help="Signing keys of the gateway's token issuer.", no_args_is_help=True)


def _sealer(settings: Settings) -> keystore.Sealer:
    try:
        return keystore.sealer_for(settings)
    except ValueError as exc:
        fail(str(exc))


@app.command()
def rotate(
    retire_old_now: Annotated[
        bool,
        typer.Option(
            "--retire-old-now",
            help="The old key leaked: its tokens stop verifying at once (within key_reload_s "
            "on every replica) instead of when the last one expires.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a new signing key current; every replica picks it up without a restart."""
    settings = Settings()
    sealer = _sealer(settings)
    keep = keystore.overlap(token_ttl_s=settings.token_ttl_s, key_reload_s=settings.key_reload_s)

    async def work(engine: AsyncEngine) -> None:
        done = await keystore.rotate(
            engine, sealer=sealer, keep_verifying=keep, retire_now=retire_old_now
        )
        emit(
            {
                "kid": done.new_kid,
                "rotated": list(done.rotated),
                "old_keys_verify_until": iso_utc(done.retire_at),
            },
            as_json=as_json,
        )

    with_engine(work)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List signing keys, newest first: which signs, which still verify, which are retired."""

    async def work(engine: AsyncEngine) -> None:
        now = datetime.now(UTC)
        rows = []
        current = None
        for key in await keystore.list_keys(engine):
            if key.rotated_at is None and current is None:
                state, current = "current", key.kid
            elif key.retire_at is not None and key.retire_at <= now:
                state = "retired"
            else:
                state = "verifying"
            rows.append(
                {
                    "kid": key.kid,
                    "alg": key.alg,
                    "state": state,
                    "created_at": iso_utc(key.created_at),
                    "rotated_at": iso_utc(key.rotated_at) if key.rotated_at else None,
                    "retire_at": iso_utc(key.retire_at) if key.retire_at else None,
                }
            )
        columns = ["kid", "alg", "state", "created_at", "rotated_at", "retire_at"]
        emit_rows(rows, columns=columns, as_json=as_json)

    with_engine(work)
