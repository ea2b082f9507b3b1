"""Per-subject request rate limiting on the `limits` library (the engine under slowapi).

slowapi itself guards the token endpoint by client address (see `gateway.api.oauth`);
the pipeline's limits key on the verified subject, known only after identity, so the
pipeline calls the same `limits` strategies directly.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.errors import RateLimited, Unavailable
from gateway.reasons import Reason

log = logging.getLogger(__name__)


class SubjectLimiter:
    def __init__(self, *, rate: str, storage_uri: str) -> None:
        self._items: list[RateLimitItem] = parse_many(rate)
        storage = storage_from_string(_async_uri(storage_uri))
        assert isinstance(storage, Storage)
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(self._storage)

    async def hit(self, subject: str) -> None:
        for item in self._items:
            try:
                allowed = await self._strategy.hit(item, "subject", subject)
                if not allowed:
                    stats = await self._strategy.get_window_stats(item, "subject", subject)
            except Exception as exc:
                # Storage down (Redis): no count, no admission — fail closed with its own code.
                log.error("rate-limit storage failed: %s", type(exc).__name__)
                raise Unavailable(
                    Reason.LIMITS_UNAVAILABLE, "The rate limiter is unavailable; retry later."
                ) from exc
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

    async def ready(self) -> bool:
        try:
            return bool(await self._storage.check())
        except Exception:
            return False


def _async_uri(uri: str) -> str:
    # `limits` selects its asyncio storage by an `async+` scheme prefix.
    return uri if uri.startswith("async+") else f"async+{uri}"
