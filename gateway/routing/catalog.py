"""The model catalog, read from the database and kept as an immutable snapshot.

The snapshot is refreshed at most every `ttl_s` seconds, so that a model added with the
CLI appears without a restart while the hot path does no database read for it. It reads
through the request path's own data access (`RequestDb`), like the trust stage.

Each load also builds every enabled target's outgoing headers: its credential reference
is resolved then (or the global upstream key used when it has none), and a target that
cannot be used (credential unresolvable, URL or host no longer allowed) is kept out of
rotation and logged, never called without its credential.

Each entry also carries its latest screening report (docs/screening.md), read in the same
query, and judged against the entry's enabled targets at load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.db.access import RequestDb
from gateway.db.models import ModelEntry, UpstreamTarget
from gateway.errors import NotFound, Unavailable
from gateway.reasons import Reason
from gateway.routing import credentials
from gateway.routing.balance import Balancer
from gateway.routing.targets import HTTP_SCHEMES, Target, check_headers, check_target_url
from gateway.screening.store import (
    LatestReport,
    ScreeningStatus,
    latest_of,
    latest_reports,
    status_of,
    upstream_of,
)

log = logging.getLogger(__name__)

_M = ModelEntry.__table__  # type: ignore[attr-defined]
_T = UpstreamTarget.__table__  # type: ignore[attr-defined]
_L = latest_reports()
# Enabled models with their enabled targets and their latest screening report, in one read.
_ENABLED = (
    select(
        _M.c.name,
        _M.c.tier_floor,
        _T.c.name.label("target"),
        _T.c.url,
        _T.c.upstream_model,
        _T.c.weight,
        _T.c.credential,
        _T.c.headers,
        _L,
    )
    .select_from(
        _M.outerjoin(_T, and_(_T.c.model == _M.c.name, _T.c.enabled.is_(True))).outerjoin(
            _L, _L.c.model_name == _M.c.name
        )
    )
    .where(_M.c.enabled.is_(True))
    .order_by(_M.c.name, _T.c.id)
)

# Sent to every upstream; only these and a target's own reach it (never the caller's).
BASE_HEADERS = {
    "content-type": "application/json",
    "accept-encoding": "identity",
    "user-agent": "tac-gateway",
}


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    tier_floor: str
    targets: tuple[Target, ...] = ()  # enabled ones, usable or not (see Target.problem)
    # The latest screening report; None: never screened. Its worth depends on the time
    # (expiry), so the policy input asks `screening_status(now)` per decision.
    screening: LatestReport | None = None

    def screening_status(self, now: datetime) -> ScreeningStatus:
        return status_of(self.screening, now)


class Catalog:
    def __init__(
        self,
        db: RequestDb,
        *,
        ttl_s: float,
        balancer: Balancer,
        fallback_key: str = "",
        allowed_hosts: Sequence[str] = (),
        allowed_schemes: Sequence[str] = HTTP_SCHEMES,
    ) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._balancer = balancer
        self._fallback_key = fallback_key
        self._allowed_hosts = tuple(allowed_hosts)
        self._allowed_schemes = tuple(allowed_schemes)
        self._routes: Mapping[str, Route] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._problems: dict[tuple[str, str], str] = {}  # logged once per change

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
        floors: dict[str, str] = {}
        targets: dict[str, list[Target]] = {}
        reported: dict[str, Any] = {}  # a row of each model: its latest report's columns
        for r in rows:
            floors[r.name] = r.tier_floor
            reported.setdefault(r.name, r)
            group = targets.setdefault(r.name, [])
            if r.target is not None:
                group.append(self._target(r))
        routes = {
            name: Route(
                name, floor, tuple(targets[name]), self._screening(reported[name], targets[name])
            )
            for name, floor in floors.items()
        }
        self._report([t for group in targets.values() for t in group])
        # Swapped whole: a reader sees the old snapshot or the new one, never a mix.
        self._balancer.sync(t for group in targets.values() for t in group if not t.problem)
        self._routes = routes
        self._loaded_at = time.monotonic()

    async def lookup(self, model: str) -> Route:
        route = (await self.routes()).get(model)
        if route is None:
            raise NotFound(Reason.MODEL_NOT_FOUND, f"The model '{model[:200]}' does not exist.")
        return route

    @staticmethod
    def _screening(row: Any, targets: list[Target]) -> LatestReport | None:
        # A report counts only for an upstream still among the enabled targets, usable or
        # not (an unusable one is not called, so it serves nothing a report could miss).
        return latest_of(row, upstreams={upstream_of(t.url, t.upstream_model) for t in targets})

    def _target(self, r: Any) -> Target:
        headers = dict(BASE_HEADERS)
        problem = None
        try:
            check_target_url(
                r.url, allowed_hosts=self._allowed_hosts, allowed_schemes=self._allowed_schemes
            )
            extra = orjson.loads(r.headers or "{}")
            if not isinstance(extra, dict):
                raise ValueError("extra headers must be a JSON object")
            headers |= check_headers(extra)
            key = credentials.resolve(r.credential) if r.credential else self._fallback_key
            if key:
                headers["authorization"] = f"Bearer {key}"
        except (ValueError, credentials.CredentialError) as exc:
            # orjson.JSONDecodeError is a ValueError. The message names a reference or a
            # rule, never a secret.
            problem = str(exc)
        return Target(
            model=r.name,
            name=r.target,
            url=r.url,
            upstream_model=r.upstream_model,
            weight=r.weight,
            headers=headers,
            problem=problem,
        )

    def _report(self, targets: list[Target]) -> None:
        problems = {(t.model, t.name): t.problem for t in targets if t.problem}
        for (model, name), problem in problems.items():
            if self._problems.get((model, name)) != problem:
                log.error("upstream target %s/%s is not usable: %s", model, name, problem)
        self._problems = problems
