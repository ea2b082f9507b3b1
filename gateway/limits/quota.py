"""What limits apply to one request: its tier's defaults, tightened by the policy.

Defaults per tier come from the policy data (`tacgw.limits.tiers` in
`policies/data.json`), overridden field by field by the `tier_limits` setting; the
policy's `limits` obligation (for example per model, `tacgw.limits.models`) can only
lower them. A tier with no entry has no limit of these kinds (the per-subject
`rate_limit` setting still applies to everyone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.policy.decision import LIMIT_FIELDS, LimitCaps
from gateway.settings import TierLimits


@dataclass(frozen=True, slots=True)
class Quota:
    requests_per_minute: int | None = None  # per subject and model (moving window)
    tokens_per_minute: int | None = None  # per subject and model (clock minute)
    daily_tokens: int | None = None  # per organization (UTC day)
    in_flight: int | None = None  # per organization
    fail_open: bool = False  # when the limits storage is down

    def tightened(self, caps: LimitCaps) -> Quota:
        changes: dict[str, Any] = {}
        for name in LIMIT_FIELDS:
            cap = getattr(caps, name)
            if cap is not None:
                mine = getattr(self, name)
                changes[name] = cap if mine is None else min(mine, cap)
        return replace(self, **changes) if changes else self


class Quotas:
    """Per-tier defaults, built once at start from policy data and settings."""

    def __init__(self, defaults: Mapping[str, Quota]) -> None:
        self._defaults = dict(defaults)
        self._none = Quota()

    @classmethod
    def from_config(
        cls,
        *,
        policy_data: Mapping[str, Any],
        overrides: Mapping[str, TierLimits],
        tiers: Sequence[str],
    ) -> Quotas:
        raw = policy_data.get("tacgw", {}).get("limits", {}).get("tiers", {})
        if not isinstance(raw, dict):
            raise ValueError("tacgw.limits.tiers in the policy data must be an object")
        unknown = sorted((set(raw) | set(overrides)) - set(tiers))
        if unknown:
            # A misspelt tier would silently leave the real one unlimited.
            raise ValueError(f"limits for unknown tiers {unknown}; the tiers are {list(tiers)}")
        named = set(raw) | set(overrides)
        return cls({tier: _quota(tier, raw.get(tier) or {}, overrides.get(tier)) for tier in named})

    def for_request(self, tier: str, caps: LimitCaps) -> Quota:
        return self._defaults.get(tier, self._none).tightened(caps)

    def tier(self, tier: str) -> Quota:
        return self._defaults.get(tier, self._none)


def _quota(tier: str, data: Any, override: TierLimits | None) -> Quota:
    if not isinstance(data, dict):
        raise ValueError(f"tacgw.limits.tiers.{tier} in the policy data must be an object")
    values: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        value = data.get(name)
        if override is not None and getattr(override, name) is not None:
            value = getattr(override, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"tacgw.limits.tiers.{tier}.{name} must be an integer")
        values[name] = value or None  # 0: no limit
    outage = data.get("on_outage", "closed")
    if override is not None and override.on_outage is not None:
        outage = override.on_outage
    if outage not in ("closed", "open"):
        raise ValueError(f"tacgw.limits.tiers.{tier}.on_outage must be 'closed' or 'open'")
    return Quota(**values, fail_open=outage == "open")
