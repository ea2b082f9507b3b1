"""The counting windows, on the `limits` storage (memory on one machine, Redis when shared).

- Requests: `limits`' moving window (exact: the last 60 s, whatever the clock says).
- Tokens per minute and per UTC day: counters of the storage's atomic `incr` (INCRBY in
  Redis), one key per clock window. A request *reserves* its tokens up front (the
  prompt's estimate plus its output cap, as OpenAI counts `max_tokens`), and is refused
  if the reservation does not fit; when the response ends, the reservation is replaced
  by the real usage. Reservations make the limit hold for concurrent requests on any
  number of replicas: every admitted token was counted before the next admission.

`limits` has no "take it back" for a window; the settle step (adding the difference,
negative when less was used) is the part written here. Keys carry their window, so a
late settle always lands in the window it reserved from.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

MINUTE = 60
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Standing:
    """One window after a request: what headers and a refusal tell the caller."""

    kind: str  # "requests" | "tokens" | "budget" | "in_flight"
    limit: int
    remaining: int
    reset_s: int  # seconds until the window frees capacity
    admitted: bool = True


@dataclass(frozen=True, slots=True)
class Reservation:
    key: str
    expiry: int
    amount: int


class Windows:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._moving = MovingWindowRateLimiter(storage)
        self._items: dict[int, RateLimitItem] = {}

    async def request(self, limit: int, *key: str) -> Standing:
        """Count one request in the moving minute, if it fits."""
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = RateLimitItemPerMinute(limit)
        admitted = await self._moving.hit(item, *key)
        stats = await self._moving.get_window_stats(item, *key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Standing("requests", limit, max(0, stats.remaining), reset, admitted)

    async def reserve(
        self, kind: str, limit: int, amount: int, *key: str
    ) -> tuple[Standing, Reservation | None]:
        """Reserve `amount` tokens in the current window; nothing is held if it does not fit.

        A reservation larger than the whole limit is cut to the limit, so that one large
        request can still run in an otherwise empty window.
        """
        now = time.time()
        span = MINUTE if kind == "tokens" else DAY
        window = int(now // span)
        name = "/".join((kind, *key, str(window)))
        amount = max(0, min(amount, limit))
        reset = max(1, math.ceil((window + 1) * span - now))
        total = await self._storage.incr(name, 2 * span, amount)
        if total > limit:
            if amount:
                await self._storage.incr(name, 2 * span, -amount)
            remaining = max(0, limit - (total - amount))
            return Standing(kind, limit, remaining, reset, admitted=False), None
        return Standing(kind, limit, limit - total, reset), Reservation(name, 2 * span, amount)

    async def adjust(self, reservation: Reservation, used: int) -> None:
        """Replace a reservation by what was really used (more, or less and given back)."""
        if used != reservation.amount:
            await self._storage.incr(reservation.key, reservation.expiry, used - reservation.amount)

    async def check(self) -> bool:
        return bool(await self._storage.check())
