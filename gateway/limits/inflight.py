"""Concurrent in-flight requests per organization, held as leases.

`limits` counts events in windows; it has no counter that goes down when a request
ends, so this is written here. A lease is a member of a set with an expiry: taking one
drops the lapsed ones, counts the rest and adds one only if under the limit, all in
one step (plain code on one event loop here, in memory; on Redis, a step of the
admission script in `scripted.py`, atomic across replicas). Ending the request removes
its lease. If a replica dies mid-request, its leases lapse after `ttl_s`: the safety net
that keeps a crash from shrinking an organization's concurrency for good.
"""

from __future__ import annotations

import time
from typing import Protocol


class Leases(Protocol):
    async def acquire(self, key: str, member: str, limit: int) -> bool: ...

    async def release(self, key: str, member: str) -> None: ...


class MemoryLeases:
    def __init__(self, *, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._held: dict[str, dict[str, float]] = {}

    async def acquire(self, key: str, member: str, limit: int) -> bool:
        now = time.monotonic()
        held = self._held.setdefault(key, {})
        if len(held) >= limit:
            for lapsed in [m for m, until in held.items() if until <= now]:
                del held[lapsed]
            if len(held) >= limit:
                return False
        held[member] = now + self._ttl
        return True

    async def release(self, key: str, member: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self._held[key]


def make_leases(storage_uri: str, *, ttl_s: float) -> Leases | None:
    """Leases in memory; None for any other store (on Redis, `scripted.py` holds them)."""
    scheme = storage_uri.removeprefix("async+").split("://", 1)[0]
    if scheme == "memory":
        return MemoryLeases(ttl_s=ttl_s)
    return None
