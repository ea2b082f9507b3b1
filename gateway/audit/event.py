"""The audit events that become leaves of the log: a decision, and later its outcome.

Plain dicts of strings, booleans, null and integers (no floats: RFC 8785 and our fast
canonical form agree only on those; durations are integer microseconds). The schema is
versioned by "v" and documented in docs/auditors.md. Prompt text is never here; the
policy input is kept as the exact JSON text the policy evaluated, so that
`audit explain` can evaluate it again (it holds no prompt: only principal, trust,
model and the request's endpoint, stream flag and max_tokens).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.audit.canonical import timestamp

SCHEMA_VERSION = 1
# A policy input longer than this (a caller can put anything in max_tokens) is kept as
# its hash only: the log is not a store for caller-chosen bytes.
MAX_POLICY_INPUT = 8192


@dataclass(frozen=True, slots=True)
class Actor:
    subject: str | None = None
    org_id: str | None = None
    client_id: str | None = None
    token_id: str | None = None
    source: str | None = None  # the caller's address as the gateway saw it
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # "upstream": the upstream's own usage object (or final stream chunk);
    # "estimated": counted by the gateway (gateway/usage) when the upstream sent none.
    source: str = "upstream"


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """What the policy was asked and answered, for one decision: what replay needs."""

    version: str
    bundle_sha256: str | None  # None: not archived (OPA before its policy was read back)
    input: str  # the exact JSON text evaluated (`policy_input_text`)
    allow: bool
    reasons: Sequence[str]
    max_tokens: int
    keep_prompt: bool


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a response ended, as the API layer saw it."""

    status: int
    usage: Usage | None
    response_bytes: int
    caller_left_early: bool
    # The reason a response that had started ended in an error (an SSE error event after
    # a broken, malformed or oversized upstream stream); None when it ended normally.
    error: str | None = None


def policy_input_text(doc: Mapping[str, Any]) -> str:
    """The policy input as the embedded engine evaluates it (orjson, insertion order)."""
    return orjson.dumps(doc).decode()


def _policy(record: PolicyRecord) -> dict[str, Any]:
    kept = len(record.input) <= MAX_POLICY_INPUT
    return {
        "version": record.version,
        "bundle_sha256": record.bundle_sha256,
        "input": record.input if kept else None,
        "input_sha256": _sha256(record.input),
        "allow": record.allow,
        "reasons": [str(r) for r in record.reasons],
        "obligations": {"max_tokens": record.max_tokens, "keep_prompt": record.keep_prompt},
    }


def decision_event(
    *,
    decision_id: str,
    ts: datetime,
    action: str,
    endpoint: str,
    actor: Actor,
    tier: str | None,
    model: str | None,
    allow: bool,
    reasons: Sequence[str],
    status: int,
    latency_us: int,
    request_sha256: str | None,
    policy_version: str | None = None,
    policy: PolicyRecord | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """One access decision: the request's final allow/deny and reasons (a policy allow can
    still end in a rate-limit deny), and `policy`, the policy's own answer, when a single
    policy evaluation decided it. `prompt` is the encrypted prompt, only when the policy's
    keep_prompt obligation asked for it."""
    return {
        "v": SCHEMA_VERSION,
        "type": "decision",
        "decision_id": decision_id,
        "ts": timestamp(ts),
        "action": action,
        "endpoint": endpoint,
        "actor": {
            "subject": actor.subject,
            "org_id": actor.org_id,
            "client_id": actor.client_id,
            "token_id": actor.token_id,
            "source": actor.source,
            "user_agent": actor.user_agent,
        },
        "tier": tier,
        "model": model,
        "decision": "allow" if allow else "deny",
        "reasons": [str(r) for r in reasons],  # Reason members are str subclasses
        "status": status,
        "latency_us": latency_us,
        "request_sha256": request_sha256,
        "policy_version": policy_version,
        "policy": None if policy is None else _policy(policy),
        "prompt": prompt,
    }


def admin_event(
    *,
    event_id: str,
    ts: datetime,
    action: str,
    actor: Actor,
    tier: str | None,
    allow: bool,
    reasons: Sequence[str],
    status: int,
    policy_version: str | None,
    detail: str,
) -> dict[str, Any]:
    """An admin action, done or refused (`gateway/admin/auditlog.py`): a decision event
    with action "admin_action" and `detail`, the exact JSON text of the row's `detail`
    (actor, action, target, before, after; a string, so any value in it stays canonical)."""
    event = decision_event(
        decision_id=event_id,
        ts=ts,
        action="admin_action",
        endpoint=f"admin.{action}",
        actor=actor,
        tier=tier,
        model=None,
        allow=allow,
        reasons=reasons,
        status=status,
        latency_us=0,
        request_sha256=None,
        policy_version=policy_version,
    )
    event["detail"] = detail
    return event


def outcome_event(
    *,
    decision_id: str,
    ts: datetime,
    status: int,
    usage: Usage | None,
    response_bytes: int,
    caller_left_early: bool,
    duration_us: int,
    error: str | None = None,
) -> dict[str, Any]:
    """How the response to an allowed decision ended: status, tokens, bytes, early exit,
    and the error that ended a started stream (the key is present only then, so outcome
    leaves of normal responses keep their shape)."""
    event: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": "outcome",
        "decision_id": decision_id,
        "ts": timestamp(ts),
        "status": status,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "source": usage.source,
        },
        "response_bytes": response_bytes,
        "caller_left_early": caller_left_early,
        "duration_us": duration_us,
    }
    if error is not None:
        event["error"] = error
    return event


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
