"""The limits of one model call on Redis in two round trips: one script admits, one settles.

Step by step (`windows.py` and `limits`' strategy) a call cost ~10 round trips: the
subject's rate hit, the in-flight lease, two token reservations, the moving-window hit
and its stats, then two adjustments and the lease's release when the response ended.
Each costs the client ~0.15-0.2 ms of CPU here (bench/limits_cost.py). The scripts
below do the same steps, in the same order, with the same keys and the same
arithmetic, atomically in Redis:

    admit   per-subject rates (`rate_limit`) → in-flight lease → tokens/minute →
            tokens/day → requests (moving window); the first that does not fit
            refuses, and the steps after the rates are undone inside the script, so a
            refused request holds nothing (a rate hit stays counted, as it always has)
    settle  both reservations replaced by the real usage, the lease released

`/v1/models` runs the admit script with the rates alone. Keys are the ones the
step-by-step code writes (the `limits` key prefix, `limits`' own moving-window lists and
keys; `tacgw:inflight:<org>`), so replicas of either version count in the same windows
during a rolling upgrade. Plain Redis only (`redis://`, `rediss://`,
`redis+unix://`): a cluster would need every key of a call in one hash slot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from limits import RateLimitItem, RateLimitItemPerMinute

from gateway.limits.refusals import rate_refusal, refusal
from gateway.limits.windows import DAY, MINUTE, Reservation, Standing

# `limits`' moving window (acquire_moving_window.lua, then moving_window.lua's stats), and
# the subject's rates in order (a hit stays counted whatever refuses after it). Shared by
# both scripts below; `now` and `stamp` are the client clock (as `limits` uses), as a
# number and as sent.
_WINDOWS = """
-- admitted?, entries in the window, the oldest of them
local function slide(key, limit, window)
  local admitted = true
  local entry = redis.call('LINDEX', key, limit - 1)
  if entry and tonumber(entry) >= now - window then
    admitted = false
  else
    redis.call('LPUSH', key, stamp)
    redis.call('LTRIM', key, 0, limit - 1)
    redis.call('EXPIRE', key, window)
  end
  -- the oldest entry still in the window: binary search over the newest-first list
  local low, high, found = 0, math.min(limit, redis.call('LLEN', key)) - 1, nil
  while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('LINDEX', key, mid))
    if value and value >= now - window then
      found = mid
      low = mid + 1
    else
      high = mid - 1
    end
  end
  if found then
    return admitted, found + 1, redis.call('LINDEX', key, found)
  end
  return admitted, 0, stamp
end

-- KEYS[k..] the rates' lists, ARGV[a..] their limit and window s, pairwise;
-- the refusal to return, or nil
local function rates(k, a)
  for i = k, #KEYS do
    local j = a + 2 * (i - k)
    local admitted, count, oldest = slide(KEYS[i], tonumber(ARGV[j]), tonumber(ARGV[j + 1]))
    if not admitted then
      return {5, 0, 0, count, oldest, i - k}
    end
  end
  return nil
end
"""

_RATES = (
    """
-- KEYS: the subject's rate lists; ARGV: 1 now, then per rate its limit and window s
-- returns as _ADMIT
local now, stamp = tonumber(ARGV[1]), ARGV[1]
"""
    + _WINDOWS
    + """
return rates(1, 2) or {0, 0, 0, 0, '0', 0}
"""
)

_ADMIT = (
    """
-- KEYS: 1 in-flight set, 2 tokens/minute counter, 3 tokens/day counter, 4 requests list,
--       5.. the subject's rate lists (`rate_limit`, one per rate)
-- ARGV: 1 in-flight limit (0: none), 2 lease ttl ms, 3 lease member,
--       4 tokens limit (0: none), 5 tokens amount, 6 tokens expiry s,
--       7 budget limit (0: none), 8 budget amount, 9 budget expiry s,
--       10 requests limit (0: none), 11 now, 12 window s,
--       then per rate: its limit, its window s
-- returns {refused step (0: admitted, 1 in-flight, 2 tokens, 3 budget, 4 requests,
--          5 a rate), tokens total, budget total, entries in the refusing or requests
--          window, its oldest entry, the refusing rate's index (from 0)}
local now, stamp = tonumber(ARGV[11]), ARGV[11]
"""
    + _WINDOWS
    + """
local refused = rates(5, 13)
if refused then
  return refused
end

local held_lease, held_tokens, held_budget = false, false, false
local function undo()
  if held_budget then redis.call('INCRBY', KEYS[3], -tonumber(ARGV[8])) end
  if held_tokens then redis.call('INCRBY', KEYS[2], -tonumber(ARGV[5])) end
  if held_lease then redis.call('ZREM', KEYS[1], ARGV[3]) end
end
local function reserve(key, amount, expiry)
  local total = redis.call('INCRBY', key, amount)
  if total == amount then redis.call('EXPIRE', key, expiry) end
  return total
end

local in_flight = tonumber(ARGV[1])
if in_flight > 0 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[1]) >= in_flight then
    return {1, 0, 0, 0, '0', 0}
  end
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  held_lease = true
end

local tokens_total, budget_total = 0, 0
local tokens_limit, tokens_amount = tonumber(ARGV[4]), tonumber(ARGV[5])
if tokens_limit > 0 then
  tokens_total = reserve(KEYS[2], tokens_amount, ARGV[6])
  if tokens_total > tokens_limit then
    if tokens_amount ~= 0 then redis.call('INCRBY', KEYS[2], -tokens_amount) end
    undo()
    return {2, tokens_total, 0, 0, '0', 0}
  end
  held_tokens = tokens_amount ~= 0
end
local budget_limit, budget_amount = tonumber(ARGV[7]), tonumber(ARGV[8])
if budget_limit > 0 then
  budget_total = reserve(KEYS[3], budget_amount, ARGV[9])
  if budget_total > budget_limit then
    if budget_amount ~= 0 then redis.call('INCRBY', KEYS[3], -budget_amount) end
    undo()
    return {3, tokens_total, budget_total, 0, '0', 0}
  end
  held_budget = budget_amount ~= 0
end

local requests = tonumber(ARGV[10])
if requests == 0 then
  return {0, tokens_total, budget_total, 0, '0', 0}
end
local admitted, count, oldest = slide(KEYS[4], requests, tonumber(ARGV[12]))
if not admitted then
  undo()
  return {4, tokens_total, budget_total, count, oldest, 0}
end
return {0, tokens_total, budget_total, count, oldest, 0}
"""
)

_SETTLE = """
-- KEYS: 1 tokens/minute counter, 2 tokens/day counter, 3 in-flight set
-- ARGV: 1 tokens delta, 2 tokens expiry s, 3 budget delta, 4 budget expiry s, 5 lease ('': none)
for i = 1, 2 do
  local delta = tonumber(ARGV[2 * i - 1])
  if delta ~= 0 then
    local total = redis.call('INCRBY', KEYS[i], delta)
    if total == delta then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
  end
end
if ARGV[5] ~= '' then redis.call('ZREM', KEYS[3], ARGV[5]) end
return 1
"""

_KINDS = ("in_flight", "tokens", "budget", "requests")


class ScriptedAdmission:
    """What an admitted call holds on Redis: settled by one script."""

    def __init__(
        self,
        redis: RedisLimits,
        *,
        lease_key: str,
        member: str,
        reservations: tuple[Reservation | None, Reservation | None],
    ) -> None:
        self._redis = redis
        self._lease_key = lease_key
        self._member = member
        self._reservations = reservations

    async def settle(self, used: int) -> None:
        await self._redis.settle(self._lease_key, self._member, self._reservations, used)


class RedisLimits:
    """The admit and settle scripts, over one coredis client of their own."""

    def __init__(self, uri: str, *, ttl_s: float, prefix: str) -> None:
        import coredis  # installed with limits[async-redis]; its own small connection pool

        uri = uri.removeprefix("async+").replace("redis+unix", "unix", 1)
        self._client: Any = coredis.Redis.from_url(uri)
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._admit = self._client.register_script(_ADMIT)
        self._rates = self._client.register_script(_RATES)
        self._settle = self._client.register_script(_SETTLE)
        self._items: dict[int, RateLimitItem] = {}

    async def hit(self, rates: Sequence[RateLimitItem], subject: str) -> None:
        """The per-subject rates alone (`/v1/models`): one round trip, or raise the 429."""
        now = time.time()
        keys: list[str | bytes] = [
            f"{self._prefix}:" + rate.key_for("subject", subject) for rate in rates
        ]
        args: list[Any] = [repr(now)]
        for rate in rates:
            args += (rate.amount, rate.get_expiry())
        raw = await self._rates.execute(keys=keys, args=args)
        assert isinstance(raw, list)
        if int(raw[0]) == 5:
            rate = rates[int(raw[5])]
            retry = max(1, math.ceil(float(raw[4]) + rate.get_expiry() - time.time()))
            raise rate_refusal(rate, retry)

    async def admit(
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
    ) -> tuple[list[Standing], ScriptedAdmission | None]:
        """Standings for the headers and what to settle (None: nothing held), or raise
        the 429 of the first limit that does not fit."""
        if not (in_flight or tokens or budget or requests):
            await self.hit(rates, subject)  # the smaller script: nothing else to count
            return [], None
        now = time.time()
        minute, day = int(now // MINUTE), int(now // DAY)
        tokens_key = self._key("tokens", subject, model, str(minute))
        budget_key = self._key("budget", org, str(day))
        lease_key = f"tacgw:inflight:{org}"
        item = self._item(requests or 1)
        requests_key = f"{self._prefix}:" + item.key_for("requests", subject, model)
        tokens_amount = max(0, min(reserve, tokens)) if tokens else 0
        budget_amount = max(0, min(reserve, budget)) if budget else 0
        keys: list[str | bytes] = [lease_key, tokens_key, budget_key, requests_key]
        args: list[Any] = [
            in_flight or 0, self._ttl_ms, member,
            tokens or 0, tokens_amount, 2 * MINUTE,
            budget or 0, budget_amount, 2 * DAY,
            requests or 0, repr(now), item.get_expiry(),
        ]  # fmt: skip
        for rate in rates:
            keys.append(f"{self._prefix}:" + rate.key_for("subject", subject))
            args += (rate.amount, rate.get_expiry())
        raw = await self._admit.execute(keys=keys, args=args)
        assert isinstance(raw, list)
        refused, tokens_total, budget_total, count = (int(v) for v in raw[:4])
        oldest = float(raw[4])
        if refused == 5:
            rate = rates[int(raw[5])]
            raise rate_refusal(rate, max(1, math.ceil(oldest + rate.get_expiry() - time.time())))
        if refused == 1:
            assert in_flight
            raise refusal(Standing("in_flight", in_flight, 0, 1, admitted=False))
        standings: list[Standing] = []
        for kind, limit, total, amount, span, window in (
            ("tokens", tokens, tokens_total, tokens_amount, MINUTE, minute),
            ("budget", budget, budget_total, budget_amount, DAY, day),
        ):
            if not limit:
                continue
            reset = max(1, math.ceil((window + 1) * span - now))
            if refused == _KINDS.index(kind) + 1:
                remaining = max(0, limit - (total - amount))
                raise refusal(Standing(kind, limit, remaining, reset, admitted=False))
            standings.append(Standing(kind, limit, limit - total, reset))
        if requests:
            reset = max(1, math.ceil(oldest + item.get_expiry() - time.time()))
            standing = Standing(
                "requests", requests, max(0, requests - count), reset, admitted=refused == 0
            )
            if refused:
                raise refusal(standing)
            standings.append(standing)
        if not (in_flight or tokens or budget):
            return standings, None  # nothing held: nothing to settle
        held = (
            Reservation(tokens_key, 2 * MINUTE, tokens_amount) if tokens else None,
            Reservation(budget_key, 2 * DAY, budget_amount) if budget else None,
        )
        settle = ScriptedAdmission(
            self, lease_key=lease_key, member=member if in_flight else "", reservations=held
        )
        return standings, settle

    async def settle(
        self,
        lease_key: str,
        member: str,
        reservations: tuple[Reservation | None, Reservation | None],
        used: int,
    ) -> None:
        tokens, budget = reservations
        await self._settle.execute(
            keys=[
                tokens.key if tokens else "-",
                budget.key if budget else "-",
                lease_key,
            ],
            args=[
                used - tokens.amount if tokens else 0, tokens.expiry if tokens else 0,
                used - budget.amount if budget else 0, budget.expiry if budget else 0,
                member,
            ],
        )  # fmt: skip

    def _key(self, kind: str, *key: str) -> str:
        return f"{self._prefix}:" + "/".join((kind, *key))

    def _item(self, limit: int) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = RateLimitItemPerMinute(limit)
        return item


def redis_limits(storage_uri: str, *, ttl_s: float, prefix: str) -> RedisLimits | None:
    """The scripts for plain Redis storage; None for any other (the step-by-step path)."""
    scheme = storage_uri.removeprefix("async+").split("://", 1)[0]
    if scheme in ("redis", "rediss", "redis+unix"):
        return RedisLimits(storage_uri, ttl_s=ttl_s, prefix=prefix)
    return None
