"""The limits of one call on `memory://` storage: one in-process step admits, one settles.

Through `limits`' MemoryStorage a call cost ~10 awaited storage calls, a lock per key,
an expiry timer task rescheduled on every one of them and a list insert at the head of
each moving window (~7.6% of the gateway's CPU at c16). Memory storage is one process's
by definition (`serve --workers` refuses it), so the whole admission is plain code on
the event loop here, without an await, hence atomic like the Redis script
(`scripted.py`), in the same order and with the same arithmetic:

    admit   per-subject rates (`rate_limit`) → in-flight lease → tokens/minute →
            tokens/day → requests (moving window); the first that does not fit refuses,
            and the steps after the rates are undone, so a refused request holds nothing
            (a rate hit stays counted, as it always has: hammering is what it limits)
    settle  both reservations replaced by the real usage, the lease released

Nothing expires on a timer. Moving windows drop their lapsed entries when touched;
token counters live in one table per clock window, and a table is dropped when the
window after next opens (a late settle still lands in its own, unread, table); windows
and leases nobody touched for a whole window are swept once a minute, on the first
admission after that minute. Memory stays bounded by the keys active in the last two
windows.

Leases: concurrent in-flight requests per organization. Each is a member with an
expiry (`ttl_s`), dropped by its release when the response ends; the expiry is the
safety net should a release never run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence

from limits import RateLimitItem

from gateway.errors import RateLimited
from gateway.limits.refusals import rate_refusal, refusal
from gateway.limits.windows import DAY, MINUTE, Standing

# Idle moving windows and lapsed leases are swept this often (on an admission).
SWEEP_EVERY_S = 60.0

_Counters = dict[str, int]


class MemoryAdmission:
    """What an admitted call holds in memory: settled in one step."""

    __slots__ = ("_held", "_limits", "_member", "_org")

    def __init__(
        self,
        limits: MemoryLimits,
        *,
        org: str,
        member: str | None,
        held: list[tuple[_Counters, str, int]],
    ) -> None:
        self._limits = limits
        self._org = org
        self._member = member
        self._held = held

    async def settle(self, used: int) -> None:
        for counters, key, amount in self._held:
            if used != amount:
                counters[key] = counters.get(key, 0) + used - amount
        if self._member is not None:
            self._limits.release(self._org, self._member)


class MemoryLimits:
    """Rates, leases, token counters and moving windows of one process."""

    def __init__(
        self,
        *,
        ttl_s: float,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._wall = wall
        self._monotonic = monotonic
        # (limit, window s, *who) → (window s, timestamps oldest first); this process's
        # own keys, so tuples rather than `limits`' strings
        self._moving: dict[tuple[object, ...], tuple[int, deque[float]]] = {}
        # (window length s, window number) → key → tokens counted in that window
        self._counters: dict[tuple[int, int], _Counters] = {}
        # org → lease member → monotonic expiry
        self._leases: dict[str, dict[str, float]] = {}
        self._next_sweep = wall() + SWEEP_EVERY_S

    def hit(self, rates: Sequence[RateLimitItem], subject: str) -> None:
        """The per-subject rates alone (`/v1/models`)."""
        now = self._wall()
        self._rates(rates, subject, now)

    def admit(
        self,
        *,
        rates: Sequence[RateLimitItem],
        in_flight: int | None,
        tokens: int | None,
        budget: int | None,
        requests: int | None,
        reserve: int,
        subject: str,
        org: str,
        model: str,
        member: str,
    ) -> tuple[list[Standing], MemoryAdmission | None]:
        """Standings for the headers and what to settle (None: nothing held), or raise
        the 429 of the first limit that does not fit."""
        now = self._wall()
        self._rates(rates, subject, now)
        if not (in_flight or tokens or budget or requests):
            return [], None
        lease = False
        if in_flight:
            if not self._acquire(org, member, in_flight):
                raise refusal(Standing("in_flight", in_flight, 0, 1, admitted=False))
            lease = True
        standings: list[Standing] = []
        held: list[tuple[_Counters, str, int]] = []
        try:
            for kind, limit, span, key in (
                ("tokens", tokens, MINUTE, f"{subject}/{model}"),
                ("budget", budget, DAY, org),
            ):
                if not limit:
                    continue
                window = int(now // span)
                counters = self._window(span, window)
                amount = max(0, min(reserve, limit))
                reset = max(1, math.ceil((window + 1) * span - now))
                total = counters.get(key, 0) + amount
                if total > limit:
                    remaining = max(0, limit - (total - amount))
                    raise refusal(Standing(kind, limit, remaining, reset, admitted=False))
                counters[key] = total
                held.append((counters, key, amount))
                standings.append(Standing(kind, limit, limit - total, reset))
            if requests:
                admitted, count, oldest = self._slide(
                    (requests, MINUTE, subject, model), requests, MINUTE, now
                )
                reset = max(1, math.ceil(oldest + MINUTE - now))
                standing = Standing(
                    "requests", requests, max(0, requests - count), reset, admitted=admitted
                )
                if not admitted:
                    raise refusal(standing)
                standings.append(standing)
        except RateLimited:
            for counters, key, amount in held:
                counters[key] -= amount
            if lease:
                self.release(org, member)
            raise
        return standings, MemoryAdmission(
            self, org=org, member=member if lease else None, held=held
        )

    def release(self, org: str, member: str) -> None:
        held = self._leases.get(org)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self._leases[org]

    def size(self) -> int:
        """Keys held: moving windows, token counters, organizations holding leases."""
        return (
            len(self._moving)
            + sum(len(counters) for counters in self._counters.values())
            + len(self._leases)
        )

    def _rates(self, rates: Sequence[RateLimitItem], subject: str, now: float) -> None:
        if now >= self._next_sweep:
            self._sweep(now)
        # In order; an earlier rate's hit stays counted when a later one refuses (as
        # `limits`' strategy, called once per rate, always did).
        for item in rates:
            expiry = item.get_expiry()
            admitted, _count, oldest = self._slide(
                (item.amount, expiry, subject), item.amount, expiry, now
            )
            if not admitted:
                raise rate_refusal(item, max(1, math.ceil(oldest + expiry - now)))

    def _slide(
        self, key: tuple[object, ...], limit: int, expiry: int, now: float
    ) -> tuple[bool, int, float]:
        """`limits`' moving window: one entry per admitted request in the last `expiry` s.

        (admitted, entries in the window, the oldest of them)."""
        found = self._moving.get(key)
        if found is None:
            entries: deque[float] = deque()
            self._moving[key] = (expiry, entries)
        else:
            entries = found[1]
            cutoff = now - expiry
            while entries and entries[0] < cutoff:
                entries.popleft()
        admitted = len(entries) < limit
        if admitted:
            entries.append(now)
        return admitted, len(entries), entries[0]

    def _acquire(self, org: str, member: str, limit: int) -> bool:
        now = self._monotonic()
        held = self._leases.get(org)
        if held is None:
            held = self._leases[org] = {}
        elif len(held) >= limit:
            for lapsed in [m for m, until in held.items() if until <= now]:
                del held[lapsed]
            if len(held) >= limit:
                return False
        held[member] = now + self._ttl
        return True

    def _window(self, span: int, window: int) -> _Counters:
        counters = self._counters.get((span, window))
        if counters is None:
            counters = self._counters[(span, window)] = {}
            # A window is read only while it is current; the previous one is kept for
            # settles of calls that began in it (`limits` kept a key 2 spans).
            for old in [k for k in self._counters if k[0] == span and k[1] < window - 1]:
                del self._counters[old]
        return counters

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_EVERY_S
        for key in [k for k, (expiry, e) in self._moving.items() if not e or e[-1] < now - expiry]:
            del self._moving[key]
        mono = self._monotonic()
        for org, held in list(self._leases.items()):
            for lapsed in [m for m, until in held.items() if until <= mono]:
                del held[lapsed]
            if not held:
                del self._leases[org]
