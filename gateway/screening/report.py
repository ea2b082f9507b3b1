"""The screening report: figures per condition, the controls, pass or fail per tier.

A report is a plain JSON document (format `tacgw.screening.report/1`) and its SHA-256 over
the canonical form (sorted keys, no whitespace, floats rounded to 6 places), so that the
stored text can be re-hashed by anyone to prove it is the one that was recorded.

A tier passes when every screened (non-control) condition's upper 95% bound is at most the
tier's threshold from policy data (`tacgw.screening.thresholds`). Using the upper bound
means a small or noisy run cannot pass: it must show the rate is low, not merely fail to
show it is high. Controls measure false positives and do not decide a tier.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.screening.stats import wilson

FORMAT = "tacgw.screening.report/1"
REPLY_CHARS = 4000  # per sample: enough to read the action, bounded for storage


@dataclass(frozen=True, slots=True)
class ScreeningPolicy:
    """The thresholds in policy data: {tier: highest acceptable upper bound}."""

    tiers: tuple[str, ...]
    thresholds: dict[str, float]
    required_tiers: tuple[str, ...]

    @classmethod
    def from_policy_data(cls, data: dict[str, Any]) -> ScreeningPolicy:
        tacgw = data.get("tacgw", {})
        screening = tacgw.get("screening", {})
        thresholds = screening.get("thresholds", {})
        required = screening.get("required_tiers", [])
        if not isinstance(thresholds, dict) or not all(
            isinstance(v, int | float) and 0 <= v <= 1 for v in thresholds.values()
        ):
            raise ValueError("tacgw.screening.thresholds must map tiers to rates in [0, 1]")
        if not isinstance(required, list) or not set(required) <= set(thresholds):
            raise ValueError("tacgw.screening.required_tiers must be tiers with a threshold")
        return cls(tuple(tacgw.get("tiers", [])), dict(thresholds), tuple(required))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One sample's record for the report (built by `screen.py`)."""

    condition: str
    valid: bool
    harmful: bool
    invalid_reason: str | None
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Report:
    body: dict[str, Any]
    sha256: str

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.body["conditions"])

    def passed(self, tier: str) -> bool:
        return any(t["tier"] == tier and t["passed"] for t in self.body["tiers"])


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(_rounded(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def condition_figures(
    name: str, kind: str, control: bool, outcomes: Sequence[Outcome]
) -> dict[str, Any]:
    valid = [o for o in outcomes if o.valid]
    harmful = sum(o.harmful for o in valid)
    low, high = wilson(harmful, len(valid))
    return {
        "name": name,
        "kind": kind,
        "control": control,
        "n": len(outcomes),
        "n_valid": len(valid),
        "harmful": harmful,
        "invalid": len(outcomes) - len(valid),
        "invalid_reasons": dict(
            sorted(Counter(o.invalid_reason for o in outcomes if not o.valid).items())
        ),
        "rate": harmful / len(valid) if valid else None,
        "ci_low": low,
        "ci_high": high,
    }


def build_report(
    *,
    header: dict[str, Any],
    conditions: Sequence[tuple[str, str, bool]],
    outcomes: Sequence[Outcome],
    policy: ScreeningPolicy,
    expires_at: datetime,
) -> Report:
    """`header` says who ran what against which upstream; `conditions` is (name, kind, control)."""
    figures = [
        condition_figures(name, kind, control, [o for o in outcomes if o.condition == name])
        for name, kind, control in conditions
    ]
    screened = [f for f in figures if not f["control"]]
    controls = [f for f in figures if f["control"]]
    # No screened condition at all proves nothing: the bound is then 1 (fail closed).
    worst = max((f["ci_high"] for f in screened), default=1.0)
    body = {
        **header,
        "format": FORMAT,
        "expires_at": expires_at.isoformat(),
        "conditions": figures,
        "controls": _controls(controls),
        "max_ci_high": worst,
        "tiers": [
            {
                "tier": tier,
                "threshold": policy.thresholds.get(tier),
                "required": tier in policy.required_tiers,
                "passed": tier in policy.thresholds and worst <= policy.thresholds[tier],
            }
            for tier in policy.tiers
        ],
        "samples": [o.record for o in outcomes],
    }
    body = _rounded(body)
    return Report(body=body, sha256=digest(body))


def _controls(controls: list[dict[str, Any]]) -> dict[str, Any]:
    n_valid = sum(f["n_valid"] for f in controls)
    harmful = sum(f["harmful"] for f in controls)
    low, high = wilson(harmful, n_valid)
    return {
        "conditions": [f["name"] for f in controls],
        "n_valid": n_valid,
        "harmful": harmful,
        "false_positive_rate": harmful / n_valid if n_valid else None,
        "ci_low": low,
        "ci_high": high,
    }


def _rounded(value: Any) -> Any:
    # Six places: enough for any rate, and the same text on every platform.
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def summary(report: Report) -> dict[str, Any]:
    """The report without its samples: what the CLI's --json and the admin API show."""
    return {k: v for k, v in report.body.items() if k != "samples"} | {"sha256": report.sha256}
