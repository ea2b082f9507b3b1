"""The model catalog as admin operations: list, disable (kept, not routed), remove."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

from gateway.admin.actor import Actor
from gateway.admin.auditlog import record_admin_event, snapshot
from gateway.admin.store import MODEL, write
from gateway.db.models import UpstreamTarget
from gateway.errors import NotFound
from gateway.reasons import Reason

_TARGET = UpstreamTarget.__table__  # type: ignore[attr-defined]


class ModelPublic(SQLModel):
    name: str
    tier_floor: str
    enabled: bool
    targets: list[str] = []  # names of its upstream targets (`model target list` for more)


async def list_models(engine: AsyncEngine) -> list[ModelPublic]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(MODEL).order_by(MODEL.c.name))).mappings().all()
        names = (await conn.execute(select(_TARGET.c.model, _TARGET.c.name))).all()
    targets: dict[str, list[str]] = {}
    for model, name in names:
        targets.setdefault(model, []).append(name)
    return [
        ModelPublic.model_validate({**dict(r), "targets": sorted(targets.get(r["name"], []))})
        for r in rows
    ]


async def disable_model(engine: AsyncEngine, *, actor: Actor, name: str) -> ModelPublic:
    """Stop routing to it (within the catalog's refresh interval); the entry is kept."""
    async with write(engine) as conn:
        before = await _row(conn, name)
        await conn.execute(update(MODEL).where(MODEL.c.name == name).values(enabled=False))
        after = await _row(conn, name)
        await record_admin_event(
            conn,
            actor=actor,
            action="model.disable",
            target={"model": name},
            before=snapshot(before),
            after=snapshot(after),
        )
    return ModelPublic.model_validate(after)


async def remove_model(engine: AsyncEngine, *, actor: Actor, name: str) -> None:
    async with write(engine) as conn:
        before = await _row(conn, name)
        # Its targets go with it (they reference it); screening reports stay as history.
        await conn.execute(delete(_TARGET).where(_TARGET.c.model == name))
        await conn.execute(delete(MODEL).where(MODEL.c.name == name))
        await record_admin_event(
            conn,
            actor=actor,
            action="model.remove",
            target={"model": name},
            before=snapshot(before),
            after=None,
        )


async def _row(conn: AsyncConnection, name: str) -> dict[str, Any]:
    row = (await conn.execute(select(MODEL).where(MODEL.c.name == name))).mappings().first()
    if row is None:
        raise NotFound(Reason.MODEL_NOT_FOUND, f"No model named {name[:200]!r}.")
    return dict(row)
