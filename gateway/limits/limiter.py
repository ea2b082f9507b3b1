"""The limits stage: admit a request against every limit that applies to it, or refuse it.

    admit(...)       a model call: the subject's rates (`rate_limit`) → in-flight slot →
                     tokens per minute → daily budget → requests per minute; an
                     `Admission` to settle when the response ends
    hit(subject)     the subject's rates alone (`/v1/models`)

Order matters: every step that can be undone comes before the one that cannot (a
moving-window hit), and a refusal undoes the steps after the rates, so a refused
request holds nothing. Memory storage admits in one in-process step (`local.py`),
plain Redis in one script (`scripted.py`); any other `limits` storage step by step.
If the storage fails, the tier decides: refuse with 503
`limits_unavailable` (the default), or admit uncounted with a metric and a log line.
Either way the next request tries the storage again: recovery needs no restart.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Protocol

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.errors import GatewayError, Unavailable
from gateway.limits.local import MemoryLimits
from gateway.limits.quota import Quota, Quotas
from gateway.limits.refusals import rate_refusal, refusal, success_headers
from gateway.limits.scripted import redis_limits
from gateway.limits.windows import Reservation, Standing, Windows
from gateway.metrics import Metrics
from gateway.policy.decision import LimitCaps
from gateway.reasons import Reason
from gateway.usage.figures import Usage

log = logging.getLogger(__name__)

# `admit` counts the subject's rates itself: a model call needs no `hit` before it
# (bench/limits_cost.py reads this to call an older tree as its flow.py did).
RATE_IN_ADMIT = True

# One log line per this many seconds while failing open, not one per request.
_FAIL_OPEN_LOG_EVERY_S = 10.0


class Held(Protocol):
    """What an admitted call holds in a storage, given back in one step."""

    async def settle(self, used: int) -> None: ...


class Admission:
    """What one admitted request holds, and the headers that describe its limits."""

    def __init__(self, *, held: Held | None = None, headers: dict[str, str] | None = None) -> None:
        self._held = held
        self.headers = headers or {}
        self._settled = False

    async def settle(self, usage: Usage | None) -> None:
        """The response has ended: debit what it really used, free its in-flight slot.

        Runs once; never raises (the caller already has its answer). `usage` None: the
        upstream gave nothing back (failed, refused, or the caller left first).
        """
        if self._settled or self._held is None:
            return
        self._settled = True
        try:
            await self._held.settle(usage.total if usage is not None else 0)
        except Exception as exc:
            # A lease lapses by itself after its TTL; a reservation stays counted.
            log.error("limits storage failed settling usage: %s", type(exc).__name__)


UNLIMITED = Admission()


class _Stepped:
    """Reservations made step by step (`limits` storages other than memory and Redis)."""

    def __init__(self, windows: Windows, reservations: tuple[Reservation, ...]) -> None:
        self._windows = windows
        self._reservations = reservations

    async def settle(self, used: int) -> None:
        for reservation in self._reservations:
            await self._windows.adjust(reservation, used)


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
        scheme = storage_uri.removeprefix("async+").split("://", 1)[0]
        # memory://: the whole admission in process, one step (`local.py`).
        self._local = MemoryLimits(ttl_s=in_flight_ttl_s) if scheme == "memory" else None
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
        self._quotas = quotas
        self._metrics = metrics
        self._last_open_log = 0.0
        counts_leases = self._local is not None or self._redis is not None
        if not counts_leases and any(quotas.tier(t).in_flight for t in tiers):
            raise ValueError("in-flight limits need memory:// or redis:// limits storage")
        # A replica whose every tier fails open still serves when the storage is down:
        # it stays ready, or an orchestrator would take every replica out at once.
        self._serves_when_down = all(quotas.tier(t).fail_open for t in tiers)

    async def hit(self, subject: str, *, tier: str | None = None) -> None:
        """The per-subject request rates (`rate_limit`) alone, for `/v1/models`.

        A model call counts them inside `admit`."""
        try:
            if self._local is not None:
                self._local.hit(self._items, subject)
            elif self._redis is not None:
                await self._redis.hit(self._items, subject)
            else:
                await self._hit_steps(subject)
        except GatewayError:
            raise
        except Exception as exc:
            self._outage(exc, self._quotas.tier(tier or ""), tier)

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
        """Admit a model call: the subject's rates, then the call's own limits (a
        reservation of `reserve` tokens); or raise its 429/503."""
        quota = self._quotas.for_request(tier, caps)
        standings: list[Standing]
        held: Held | None
        try:
            # One admission, memory or Redis: the same counts in the same order.
            call: dict[str, Any] = {
                "rates": self._items,
                "in_flight": quota.in_flight,
                "tokens": quota.tokens_per_minute,
                "budget": quota.daily_tokens,
                "requests": quota.requests_per_minute,
                "reserve": reserve,
                "subject": subject,
                "org": org,
                "model": model,
                "member": request_id,
            }
            if self._local is not None:
                standings, held = self._local.admit(**call)
            elif self._redis is not None:
                standings, held = await self._redis.admit(**call)
            else:
                await self._hit_steps(subject)
                if quota in (_NO_LIMITS, _NO_LIMITS_OPEN):
                    return UNLIMITED
                standings, held = await self._admit_steps(quota, subject, org, model, reserve)
        except GatewayError:
            raise
        except Exception as exc:
            self._outage(exc, quota, tier)
            return UNLIMITED
        if held is None and not standings:
            return UNLIMITED
        return Admission(held=held, headers=success_headers(standings))

    async def _hit_steps(self, subject: str) -> None:
        for item in self._items:
            if not await self._strategy.hit(item, "subject", subject):
                stats = await self._strategy.get_window_stats(item, "subject", subject)
                raise rate_refusal(item, max(1, math.ceil(stats.reset_time - time.time())))

    async def _admit_steps(
        self, quota: Quota, subject: str, org: str, model: str, reserve: int
    ) -> tuple[list[Standing], Held | None]:
        reservations: list[Reservation] = []
        standings: list[Standing] = []
        try:
            for kind, limit, key in (
                ("tokens", quota.tokens_per_minute, (subject, model)),
                ("budget", quota.daily_tokens, (org,)),
            ):
                if limit:
                    standing, reservation = await self._windows.reserve(kind, limit, reserve, *key)
                    if reservation is None:
                        raise refusal(standing)
                    reservations.append(reservation)
                    standings.append(standing)
            if quota.requests_per_minute:
                standing = await self._windows.request(
                    quota.requests_per_minute, "requests", subject, model
                )
                if not standing.admitted:
                    raise refusal(standing)
                standings.append(standing)
        except BaseException:
            # Best effort: if the storage is what failed, the reservation stays counted
            # (it errs on the side of refusing).
            with contextlib.suppress(Exception):
                for reservation in reservations:
                    await self._windows.adjust(reservation, 0)
            raise
        return standings, _Stepped(self._windows, tuple(reservations)) if reservations else None

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
        if self._local is not None:
            return True
        try:
            return await self._windows.check() or self._serves_when_down
        except Exception:
            return self._serves_when_down


_NO_LIMITS = Quota()
_NO_LIMITS_OPEN = Quota(fail_open=True)


def _async_uri(uri: str) -> str:
    # `limits` selects its asyncio storage by an `async+` scheme prefix.
    return uri if uri.startswith("async+") else f"async+{uri}"
