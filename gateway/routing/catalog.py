"""The model catalog, read from the database and kept as an immutable snapshot.

The snapshot is refreshed at most every `ttl_s` seconds, so that a model added with the
CLI appears without a restart while the hot path does no database read for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import ModelEntry
from gateway.errors import NotFound
from gateway.reasons import Reason


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    upstream_url: str
    upstream_model: str
    tier_floor: str

    def as_policy_input(self) -> dict[str, str]:
        return {"name": self.name, "tier_floor": self.tier_floor}


class Catalog:
    def __init__(self, engine: AsyncEngine, *, ttl_s: float) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._routes: Mapping[str, Route] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def routes(self) -> Mapping[str, Route]:
        if time.monotonic() - self._loaded_at > self._ttl_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._ttl_s:
                    await self.reload()
        return self._routes

    async def reload(self) -> None:
        query = select(ModelEntry).where(ModelEntry.__table__.c.enabled.is_(True))  # type: ignore[attr-defined]
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        # Swapped whole: a reader sees the old snapshot or the new one, never a mix.
        self._routes = {
            r.name: Route(r.name, r.upstream_url, r.upstream_model, r.tier_floor) for r in rows
        }
        self._loaded_at = time.monotonic()

    async def lookup(self, model: object) -> Route:
        if not isinstance(model, str) or not model:
            raise NotFound(Reason.MODEL_NOT_FOUND, "The request names no model.")
        route = (await self.routes()).get(model)
        if route is None:
            raise NotFound(Reason.MODEL_NOT_FOUND, f"The model '{model[:200]}' does not exist.")
        return route
