"""The model catalog, read from the database and kept as an immutable snapshot.

The snapshot is refreshed at most every `ttl_s` seconds, so that a model added with the
CLI appears without a restart while the hot path does no database read for it. It reads
through the request path's own data access (`RequestDb`), like the trust stage. Each
entry carries its latest screening report (docs/screening.md), read in the same query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from gateway.db.access import RequestDb
from gateway.errors import NotFound, Unavailable
from gateway.reasons import Reason
from gateway.screening.store import (
    LatestReport,
    ScreeningStatus,
    catalog_query,
    latest_of,
    status_of,
)

log = logging.getLogger(__name__)

# Enabled entries with their latest screening report, in one read.
_ENABLED = catalog_query(enabled_only=True)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    upstream_url: str
    upstream_model: str
    tier_floor: str
    # The latest screening report; None: never screened. Its worth depends on the time
    # (expiry), so the policy input asks `screening_status(now)` per decision.
    screening: LatestReport | None = None

    def screening_status(self, now: datetime) -> ScreeningStatus:
        return status_of(self.screening, now)


class Catalog:
    def __init__(self, db: RequestDb, *, ttl_s: float) -> None:
        self._db = db
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

    def snapshot(self) -> Mapping[str, Route]:
        """The routes as last loaded, without reloading (for metrics at scrape time)."""
        return self._routes

    async def reload(self) -> None:
        try:
            rows = await self._db.read(_ENABLED, {})
        except (SQLAlchemyError, OSError) as exc:
            # No stale answer: a model removed or re-floored must not keep serving.
            log.error("catalog read failed: %s", type(exc).__name__)
            raise Unavailable(
                Reason.CATALOG_UNAVAILABLE, "The model catalog is unavailable; retry later."
            ) from exc
        # Swapped whole: a reader sees the old snapshot or the new one, never a mix.
        self._routes = {
            r.name: Route(r.name, r.upstream_url, r.upstream_model, r.tier_floor, latest_of(r))
            for r in rows
        }
        self._loaded_at = time.monotonic()

    async def lookup(self, model: str) -> Route:
        route = (await self.routes()).get(model)
        if route is None:
            raise NotFound(Reason.MODEL_NOT_FOUND, f"The model '{model[:200]}' does not exist.")
        return route
