"""The policy stage's typed values: what goes into the policy and what comes out."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.reasons import Reason

log = logging.getLogger(__name__)

# The rules every engine evaluates; both engines must give the same answers for them.
PACKAGE = "tacgw.authz"  # one access decision per model request
ADMIN_PACKAGE = "tacgw.admin"  # who may do what in trust administration
RULE = "decision"


@dataclass(frozen=True, slots=True)
class LimitCaps:
    """Limits the policy sets for one request; they can only tighten the tier's defaults."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    daily_tokens: int | None = None
    in_flight: int | None = None


LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "daily_tokens", "in_flight")


@dataclass(frozen=True, slots=True)
class Obligations:
    max_tokens: int = 0  # 0: no cap from policy
    keep_prompt: bool = False
    limits: LimitCaps = field(default_factory=LimitCaps)


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...]
    obligations: Obligations = field(default_factory=Obligations)
    policy_version: str = ""

    @classmethod
    def deny(cls, reason: Reason, policy_version: str = "") -> Decision:
        return cls(allow=False, reasons=(str(reason),), policy_version=policy_version)


def parse_result(result: Any, policy_version: str) -> Decision:
    """Read `{allow, reasons, obligations}`; anything malformed is a deny (fail closed)."""
    if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
        return Decision.deny(Reason.POLICY_ERROR, policy_version)
    raw_reasons = result.get("reasons", [])
    obligations = result.get("obligations") or {}
    if not isinstance(raw_reasons, list) or not isinstance(obligations, dict):
        return Decision.deny(Reason.POLICY_ERROR, policy_version)
    # Any reason against the request denies it, whatever `allow` says.
    allow = result["allow"] and not raw_reasons
    reasons = tuple(sorted({_known(r) for r in raw_reasons}))
    if not reasons:
        # A deny must say why: a policy that denies without a reason is itself at fault.
        reasons = (str(Reason.ALLOWED),) if allow else (str(Reason.POLICY_ERROR),)
    max_tokens = obligations.get("max_tokens", 0)
    valid_cap = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
    return Decision(
        allow=allow,
        reasons=reasons,
        obligations=Obligations(
            max_tokens=max_tokens if valid_cap else 0,
            keep_prompt=obligations.get("keep_prompt") is True,
            limits=_limit_caps(obligations.get("limits")),
        ),
        policy_version=policy_version,
    )


def _limit_caps(raw: Any) -> LimitCaps:
    """Positive integers only; anything else in a field is ignored (it could only loosen)."""
    if not isinstance(raw, dict):
        return LimitCaps()
    caps = {
        name: value
        for name in LIMIT_FIELDS
        if isinstance(value := raw.get(name), int) and not isinstance(value, bool) and value > 0
    }
    return LimitCaps(**caps)


def _known(raw: Any) -> str:
    """A policy's reason, if `Reason` has it; otherwise `policy_error` (every code the
    gateway returns is a `Reason`, and an unknown one means the policy and code drifted)."""
    try:
        return str(Reason(raw))
    except ValueError:
        log.error("policy gave an unknown reason %r; reported as policy_error", str(raw)[:80])
        return str(Reason.POLICY_ERROR)


@dataclass(frozen=True, slots=True)
class AdminDecision:
    allow: bool
    reasons: tuple[str, ...]
    policy_version: str = ""


def parse_admin_result(result: Any, policy_version: str) -> AdminDecision:
    """Read `{allow, reasons}` of the admin policy, failing closed like `parse_result`."""
    decision = parse_result(result, policy_version)
    return AdminDecision(decision.allow, decision.reasons, policy_version)
