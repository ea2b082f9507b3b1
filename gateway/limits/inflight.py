"""Concurrent in-flight requests per organization, held as leases.

`limits` counts events in windows; it has no counter that goes down when a request
ends, so this is written here. A lease is a member of a set with an expiry: taking one
drops the lapsed ones, counts the rest and adds one only if under the limit, all in
one step (a Lua script in Redis, atomic across replicas; plain code on one event loop
in memory). Ending the request removes its lease. If a replica dies mid-request, its
leases lapse after `ttl_s`: the safety net that keeps a crash from shrinking an
organization's concurrency for good.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


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


class RedisLeases:
    def __init__(self, uri: str, *, ttl_s: float) -> None:
        import coredis  # installed with limits[async-redis]; its own small connection pool

        uri = uri.removeprefix("async+").replace("redis+unix", "unix", 1)
        self._client: Any = coredis.Redis.from_url(uri)
        self._ttl_ms = int(ttl_s * 1000)
        self._acquire = self._client.register_script(_ACQUIRE)

    async def acquire(self, key: str, member: str, limit: int) -> bool:
        taken = await self._acquire.execute(
            keys=[f"tacgw:inflight:{key}"], args=[limit, self._ttl_ms, member]
        )
        return bool(taken)

    async def release(self, key: str, member: str) -> None:
        await self._client.zrem(f"tacgw:inflight:{key}", [member])


def make_leases(storage_uri: str, *, ttl_s: float) -> Leases | None:
    """Leases on the same store as the windows; None where neither kind is written."""
    scheme = storage_uri.removeprefix("async+").split("://", 1)[0]
    if scheme == "memory":
        return MemoryLeases(ttl_s=ttl_s)
    if scheme in ("redis", "rediss", "redis+unix"):
        return RedisLeases(storage_uri, ttl_s=ttl_s)
    return None
