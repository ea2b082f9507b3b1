"""What a caller is told about its limits: the 429s and the headers of every answer.

Each 429 names the window that refused it (`rate_limited`, `tokens_exhausted`,
`budget_exhausted`, `too_many_in_flight`) and its `Retry-After` is when *that* window
frees capacity. `RateLimit-Limit/Remaining/Reset` describe the same window on a 429,
and on a success the window closest to running out. The `x-ratelimit-*-requests` and
`*-tokens` names are OpenAI's (their reset is in seconds here); `*-budget` is the
organization's daily token budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from limits import RateLimitItem

from gateway.errors import RateLimited
from gateway.limits.windows import Standing
from gateway.reasons import Reason

_REASONS = {
    "requests": Reason.RATE_LIMITED,
    "tokens": Reason.TOKENS_EXHAUSTED,
    "budget": Reason.BUDGET_EXHAUSTED,
    "in_flight": Reason.TOO_MANY_IN_FLIGHT,
}

_MESSAGES = {
    "requests": "Rate limit of {limit} requests per minute for this model exceeded",
    "tokens": "Token limit of {limit} tokens per minute for this model reached",
    "budget": "Your organization's daily budget of {limit} tokens is spent",
    "in_flight": "Your organization already has {limit} requests in flight",
}


def refusal(standing: Standing) -> RateLimited:
    """The 429 for the window that refused."""
    retry = standing.reset_s
    message = _MESSAGES[standing.kind].format(limit=standing.limit)
    return RateLimited(
        _REASONS[standing.kind],
        f"{message}; retry in {retry} s.",
        headers={"Retry-After": str(retry), **_standard(standing), **_named(standing)},
    )


def rate_refusal(item: RateLimitItem, retry_after: int) -> RateLimited:
    """The 429 of the per-subject `rate_limit` (one of its rates)."""
    return RateLimited(
        Reason.RATE_LIMITED,
        f"Rate limit of {item} exceeded; retry in {retry_after} s.",
        headers={
            "Retry-After": str(retry_after),
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(retry_after),
        },
    )


def success_headers(standings: Sequence[Standing]) -> dict[str, str]:
    """Every measured window by name, and the tightest one as `RateLimit-*`."""
    if not standings:
        return {}
    headers: dict[str, str] = {}
    tightest, least = standings[0], 2.0
    for standing in standings:
        names = _NAMES.get(standing.kind)
        if names is not None:
            limit_name, remaining_name, reset_name = names
            headers[limit_name] = str(standing.limit)
            headers[remaining_name] = str(standing.remaining)
            headers[reset_name] = str(standing.reset_s)
        share = standing.remaining / standing.limit
        if share < least:  # the first of equals, as min() chose
            tightest, least = standing, share
    headers["RateLimit-Limit"] = str(tightest.limit)
    headers["RateLimit-Remaining"] = str(tightest.remaining)
    headers["RateLimit-Reset"] = str(tightest.reset_s)
    return headers


def _standard(standing: Standing) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(standing.limit),
        "RateLimit-Remaining": str(standing.remaining),
        "RateLimit-Reset": str(standing.reset_s),
    }


# Each window's header names, built once (the success headers are on every answer).
_NAMES = {
    kind: tuple(f"x-ratelimit-{field}-{kind}" for field in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens", "budget")
}


def _named(standing: Standing) -> dict[str, str]:
    names = _NAMES.get(standing.kind)
    if names is None:  # in flight: no header of its own
        return {}
    values = (str(standing.limit), str(standing.remaining), str(standing.reset_s))
    return dict(zip(names, values, strict=True))
