"""The limits stage: admit a request against every limit that applies to it, or refuse it.

    hit(subject)     the per-subject request rate of the `rate_limit` setting (every /v1 call)
    admit(...)       a model call: in-flight slot → tokens per minute → daily budget →
                     requests per minute; an `Admission` to settle when the response ends

Order matters: every step that can be undone comes before the one that cannot (a
moving-window hit), and a refusal undoes the steps before it, so a refused request
holds nothing. If the storage fails, the tier decides: refuse with 503
`limits_unavailable` (the default), or admit uncounted with a metric and a log line.
Either way the next request tries the storage again: recovery needs no restart.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.errors import GatewayError, RateLimited, Unavailable
from gateway.limits.inflight import Leases, make_leases
from gateway.limits.quota import Quota, Quotas
from gateway.limits.refusals import refusal, success_headers
from gateway.limits.scripted import ScriptedAdmission, redis_limits
from gateway.limits.windows import Reservation, Standing, Windows
from gateway.metrics import Metrics
from gateway.policy.decision import LimitCaps
from gateway.reasons import Reason
from gateway.usage.figures import Usage

log = logging.getLogger(__name__)

# One log line per this many seconds while failing open, not one per request.
_FAIL_OPEN_LOG_EVERY_S = 10.0


class Admission:
    """What one admitted request holds, and the headers that describe its limits."""

    def __init__(
        self,
        *,
        windows: Windows | None = None,
        reservations: tuple[Reservation, ...] = (),
        leases: Leases | None = None,
        lease: tuple[str, str] | None = None,
        scripted: ScriptedAdmission | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._scripted = scripted
        self._windows = windows
        self._reservations = reservations
        self._leases = leases
        self._lease = lease
        self.headers = headers or {}
        self._settled = False

    async def settle(self, usage: Usage | None) -> None:
        """The response has ended: debit what it really used, free its in-flight slot.

        Runs once; never raises (the caller already has its answer). `usage` None: the
        upstream gave nothing back (failed, refused, or the caller left first).
        """
        if self._settled:
            return
        self._settled = True
        used = usage.total if usage is not None else 0
        if self._scripted is not None:
            try:
                await self._scripted.settle(used)
            except Exception as exc:
                # The lease lapses by itself after its TTL; the reservation stays counted.
                log.error("limits storage failed settling usage: %s", type(exc).__name__)
            return
        try:
            if self._windows is not None:
                for reservation in self._reservations:
                    await self._windows.adjust(reservation, used)
        except Exception as exc:
            log.error("limits storage failed settling usage: %s", type(exc).__name__)
        finally:
            if self._leases is not None and self._lease is not None:
                try:
                    await self._leases.release(*self._lease)
                except Exception as exc:
                    # The lease lapses by itself after its TTL.
                    log.error("limits storage failed releasing a slot: %s", type(exc).__name__)


UNLIMITED = Admission()


class Limiter:
    def __init__(
        self,
        *,
        rate: str,
        storage_uri: str,
        quotas: Quotas,
        in_flight_ttl_s: float,
        metrics: Metrics,
        tiers: list[str],
    ) -> None:
        self._items: list[RateLimitItem] = parse_many(rate)
        storage = storage_from_string(_async_uri(storage_uri))
        assert isinstance(storage, Storage)
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._windows = Windows(storage)
        # Plain Redis: a call's limits in one script to admit and one to settle.
        bridge = getattr(storage, "bridge", None)
        self._redis = redis_limits(
            storage_uri, ttl_s=in_flight_ttl_s, prefix=getattr(bridge, "key_prefix", "LIMITS")
        )
        self._leases = make_leases(storage_uri, ttl_s=in_flight_ttl_s)
        self._quotas = quotas
        self._metrics = metrics
        self._last_open_log = 0.0
        counts_leases = self._leases is not None or self._redis is not None
        if not counts_leases and any(quotas.tier(t).in_flight for t in tiers):
            raise ValueError("in-flight limits need memory:// or redis:// limits storage")
        # A replica whose every tier fails open still serves when the storage is down:
        # it stays ready, or an orchestrator would take every replica out at once.
        self._serves_when_down = all(quotas.tier(t).fail_open for t in tiers)

    async def hit(self, subject: str, *, tier: str | None = None) -> None:
        """The per-subject request rate (`rate_limit`), for every /v1 call."""
        for item in self._items:
            try:
                allowed = await self._strategy.hit(item, "subject", subject)
                if not allowed:
                    stats = await self._strategy.get_window_stats(item, "subject", subject)
            except Exception as exc:
                self._outage(exc, self._quotas.tier(tier or ""), tier)
                return
            if not allowed:
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    Reason.RATE_LIMITED,
                    f"Rate limit of {item} exceeded; retry in {retry_after} s.",
                    headers={
                        "Retry-After": str(retry_after),
                        "RateLimit-Limit": str(item.amount),
                        "RateLimit-Remaining": "0",
                        "RateLimit-Reset": str(retry_after),
                    },
                )

    async def admit(
        self,
        *,
        subject: str,
        org: str,
        tier: str,
        model: str,
        caps: LimitCaps,
        reserve: int,
        request_id: str,
    ) -> Admission:
        """Admit a model call whose reservation is `reserve` tokens, or raise its 429/503."""
        quota = self._quotas.for_request(tier, caps)
        if quota in (_NO_LIMITS, _NO_LIMITS_OPEN):
            return UNLIMITED
        try:
            return await self._admit(quota, subject, org, model, reserve, request_id)
        except GatewayError:
            raise
        except Exception as exc:
            self._outage(exc, quota, tier)
            return UNLIMITED

    async def _admit(
        self, quota: Quota, subject: str, org: str, model: str, reserve: int, request_id: str
    ) -> Admission:
        if self._redis is not None:
            shown, scripted, refused = await self._redis.admit(
                in_flight=quota.in_flight,
                tokens=quota.tokens_per_minute,
                budget=quota.daily_tokens,
                requests=quota.requests_per_minute,
                reserve=reserve,
                subject=subject,
                org=org,
                model=model,
                member=request_id,
            )
            if refused is not None:
                raise refusal(refused)
            return Admission(scripted=scripted, headers=success_headers(shown))
        lease: tuple[str, str] | None = None
        reservations: list[Reservation] = []
        standings: list[Standing] = []
        try:
            if quota.in_flight and self._leases is not None:
                if not await self._leases.acquire(org, request_id, quota.in_flight):
                    raise refusal(Standing("in_flight", quota.in_flight, 0, 1, admitted=False))
                lease = (org, request_id)
            for kind, limit, key in (
                ("tokens", quota.tokens_per_minute, (subject, model)),
                ("budget", quota.daily_tokens, (org,)),
            ):
                if limit:
                    standing, held = await self._windows.reserve(kind, limit, reserve, *key)
                    if held is None:
                        raise refusal(standing)
                    reservations.append(held)
                    standings.append(standing)
            if quota.requests_per_minute:
                standing = await self._windows.request(
                    quota.requests_per_minute, "requests", subject, model
                )
                if not standing.admitted:
                    raise refusal(standing)
                standings.append(standing)
        except BaseException:
            await self._undo(reservations, lease)
            raise
        return Admission(
            windows=self._windows,
            reservations=tuple(reservations),
            leases=self._leases,
            lease=lease,
            headers=success_headers(standings),
        )

    async def _undo(self, reservations: list[Reservation], lease: tuple[str, str] | None) -> None:
        # Best effort: if the storage is what failed, the lease lapses by its TTL and the
        # reservation stays counted (it errs on the side of refusing).
        with contextlib.suppress(Exception):
            for reservation in reservations:
                await self._windows.adjust(reservation, 0)
        if lease is not None and self._leases is not None:
            with contextlib.suppress(Exception):
                await self._leases.release(*lease)

    def _outage(self, exc: Exception, quota: Quota, tier: str | None) -> None:
        """The storage failed: fail open (count, log now and then) or raise the 503."""
        if not quota.fail_open:
            log.error("rate-limit storage failed: %s", type(exc).__name__)
            raise Unavailable(
                Reason.LIMITS_UNAVAILABLE, "The rate limiter is unavailable; retry later."
            ) from exc
        self._metrics.limits_fail_open.labels(tier or "none").inc()
        now = time.monotonic()
        if now - self._last_open_log >= _FAIL_OPEN_LOG_EVERY_S:
            self._last_open_log = now
            log.warning(
                "rate-limit storage failed (%s); admitting %s-tier requests uncounted",
                type(exc).__name__,
                tier,
            )

    async def ready(self) -> bool:
        try:
            return await self._windows.check() or self._serves_when_down
        except Exception:
            return self._serves_when_down


_NO_LIMITS = Quota()
_NO_LIMITS_OPEN = Quota(fail_open=True)


def _async_uri(uri: str) -> str:
    # `limits` selects its asyncio storage by an `async+` scheme prefix.
    return uri if uri.startswith("async+") else f"async+{uri}"
