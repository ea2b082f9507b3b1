"""One-time identifiers: a DPoP proof's or a client assertion's `jti`, seen at most once.

Kept in the rate limiter's `limits` storage: memory on one machine, Redis when replicated,
so that a proof replayed against another replica is refused too. An atomic increment
with an expiry is the whole protocol: the first use counts 1.
"""

from __future__ import annotations

import logging
import math

from limits.aio.storage import Storage
from limits.storage import storage_from_string

from gateway.errors import Unavailable
from gateway.reasons import Reason

log = logging.getLogger(__name__)


class ReplayGuard:
    def __init__(self, storage_uri: str) -> None:
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        storage = storage_from_string(uri)
        assert isinstance(storage, Storage)
        self._storage = storage

    async def first_use(self, *, kind: str, value: str, ttl_s: float) -> bool:
        """True the first time `value` is seen within `ttl_s`; False for a replay."""
        try:
            count = await self._storage.incr(f"tacgw:{kind}:{value}", expiry=math.ceil(ttl_s))
        except Exception as exc:
            # Without the store, a replay cannot be told from a first use: fail closed.
            log.error("replay store failed: %s", type(exc).__name__)
            raise Unavailable(
                Reason.LIMITS_UNAVAILABLE, "The replay store is unavailable; retry later."
            ) from exc
        return count == 1
