"""The audit draft of one request: filled in stage by stage, committed exactly once.

The pipeline commits it in one place (`gateway.pipeline.flow.settle`); a second commit is
a programming error and raises, rather than being silently ignored. Committing writes the
audit row and, in the same transaction, the decision event as a leaf of the transparency
log (`gateway/audit/event.py`, `canonical.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.audit.canonical import NotCanonicalizable, canonical_bytes
from gateway.audit.event import Actor, Delivery, PolicyRecord, decision_event, outcome_event
from gateway.audit.ids import new_event_id
from gateway.audit.ledger import LeafInput
from gateway.audit.writer import AuditUnavailable, AuditWriter
from gateway.identity.principal import Principal
from gateway.metrics import Metrics

log = logging.getLogger(__name__)


class AuditDraft:
    def __init__(self, *, endpoint: str, writer: AuditWriter, metrics: Metrics) -> None:
        # Made on entry, so that every outcome (even a 401) is keyed by it.
        self.decision_id = new_event_id()
        self.endpoint = endpoint
        self._writer = writer
        self._metrics = metrics
        self._started = time.perf_counter()
        self._ts = datetime.now(UTC)
        self.principal: Principal | None = None
        self.tier: str | None = None
        self.model: str | None = None
        self.policy_version: str | None = None
        self.request_hash: str | None = None
        # The caller's address and user agent as the gateway saw them (not verified).
        self.source: str | None = None
        self.user_agent: str | None = None
        # What the policy was asked and answered, when one evaluation decided (for replay).
        self.policy: PolicyRecord | None = None
        # Set by the forward stage before each try (`gateway.forward.upstream.TryRecord`).
        self.upstream_target: str | None = None
        self.upstream_tries: int | None = None
        # A decision with no verified token (the OAuth endpoints): who and which token it is
        # about, its action, and `detail` (JSON text, in the row and the leaf alike).
        self.named: Actor | None = None
        self.action: str | None = None
        self.detail: str | None = None
        self.committed = False

    async def commit(self, *, allow: bool, status: int, reasons: Sequence[str]) -> None:
        """Write the row durably (raises AuditUnavailable if it cannot be), then count it."""
        if self.committed:
            raise RuntimeError(f"audit record {self.decision_id} committed twice")
        self.committed = True
        elapsed = time.perf_counter() - self._started
        decision = "allow" if allow else "deny"
        who = self._who()  # the row's ids and the event's actor alike
        row: dict[str, Any] = {
            "id": self.decision_id,
            "ts": self._ts,
            "endpoint": self.endpoint,
            "subject": who.subject,
            "client_id": who.client_id,
            "org_id": who.org_id,
            "token_id": who.token_id,
            "tier": self.tier,
            "model": self.model,
            "decision": decision,
            "reasons": orjson.dumps(list(reasons)).decode(),
            "status": status,
            "policy_version": self.policy_version,
            "latency_ms": round(elapsed * 1000, 3),
            "request_hash": self.request_hash,
            "upstream_target": self.upstream_target,
            "upstream_tries": self.upstream_tries,
            "detail": self.detail,
        }
        try:
            leaf = self._leaf(who, allow=allow, status=status, reasons=reasons, elapsed=elapsed)
            await self._writer.record(row, leaf)
        except Exception:
            self._metrics.audit_failures.inc()
            raise
        # Label values come from the catalog and tier list only, never from caller input.
        self._metrics.count_decision(
            self.endpoint, self.tier or "none", self.model or "none", decision, reasons[0], elapsed
        )

    def report_delivery(self, delivery: Delivery) -> None:
        """Log how the response ended (an outcome leaf), once it was sent; nobody waits.

        A gateway that dies before this leaves the decision without an outcome, which
        the auditor sees as such."""
        event = outcome_event(
            decision_id=self.decision_id,
            ts=datetime.now(UTC),
            status=delivery.status,
            usage=delivery.usage,
            response_bytes=delivery.response_bytes,
            caller_left_early=delivery.caller_left_early,
            error=delivery.error,
            duration_us=int((time.perf_counter() - self._started) * 1_000_000),
        )
        try:
            leaf = LeafInput(self.decision_id, "outcome", canonical_bytes(event))
        except NotCanonicalizable as exc:
            log.error("outcome event %s is not canonical JSON: %s", self.decision_id, exc)
            return
        self._writer.record_later(leaf)

    def _who(self) -> Actor:
        """The actor: the verified token's ids, else what the endpoint named, else none;
        with the caller's address and user agent as the gateway saw them."""
        p = self.principal
        if p is not None:
            return Actor(p.subject, p.org_id, p.client_id, p.token_id, self.source, self.user_agent)
        named = self.named or _NOBODY
        return Actor(
            named.subject,
            named.org_id,
            named.client_id,
            named.token_id,
            self.source,
            self.user_agent,
        )

    def _leaf(
        self, who: Actor, *, allow: bool, status: int, reasons: Sequence[str], elapsed: float
    ) -> LeafInput:
        event = decision_event(
            decision_id=self.decision_id,
            ts=self._ts,
            action=self.action or _action(self.endpoint),
            endpoint=self.endpoint,
            actor=who,
            tier=self.tier,
            model=self.model,
            allow=allow,
            reasons=reasons,
            status=status,
            latency_us=int(elapsed * 1_000_000),
            request_sha256=self.request_hash,
            policy_version=self.policy_version,
            policy=self.policy,
        )
        if self.detail is not None:
            event["detail"] = self.detail  # as admin events: the row's exact JSON text
        try:
            return LeafInput(self.decision_id, "decision", canonical_bytes(event))
        except NotCanonicalizable as exc:  # a bug in what we put in events: fail closed
            log.error("decision event %s is not canonical JSON: %s", self.decision_id, exc)
            raise AuditUnavailable(f"decision event is not canonical JSON: {exc}") from exc


_NOBODY = Actor()


def _action(endpoint: str) -> str:
    if endpoint.startswith("models"):
        return "model_list"
    if endpoint == "unmatched":
        return "unmatched_route"
    return "model_call"
