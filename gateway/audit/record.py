"""The audit draft of one request: filled in stage by stage, committed exactly once.

The pipeline commits it in one place (`gateway.pipeline.flow.settle`); a second commit is
a programming error and raises, rather than being silently ignored.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.audit.writer import AuditWriter
from gateway.identity.principal import Principal
from gateway.metrics import Metrics


class AuditDraft:
    def __init__(self, *, endpoint: str, writer: AuditWriter, metrics: Metrics) -> None:
        # Made on entry, so that every outcome (even a 401) is keyed by it.
        # Random, not secret (an id grants nothing): getrandbits avoids a urandom syscall.
        self.decision_id = f"{random.getrandbits(128):032x}"
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
        # Set by the forward stage before each try (`gateway.forward.upstream.TryRecord`).
        self.upstream_target: str | None = None
        self.upstream_tries: int | None = None
        self.committed = False

    async def commit(self, *, allow: bool, status: int, reasons: Sequence[str]) -> None:
        """Write the row durably (raises AuditUnavailable if it cannot be), then count it."""
        if self.committed:
            raise RuntimeError(f"audit record {self.decision_id} committed twice")
        self.committed = True
        elapsed = time.perf_counter() - self._started
        decision = "allow" if allow else "deny"
        p = self.principal
        row: dict[str, Any] = {
            "id": self.decision_id,
            "ts": self._ts,
            "endpoint": self.endpoint,
            "subject": p.subject if p else None,
            "client_id": p.client_id if p else None,
            "org_id": p.org_id if p else None,
            "token_id": p.token_id if p else None,
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
        }
        try:
            await self._writer.record(row)
        except Exception:
            self._metrics.audit_failures.inc()
            raise
        # Label values come from the catalog and tier list only, never from caller input.
        self._metrics.requests.labels(
            self.endpoint, self.tier or "none", self.model or "none", decision, reasons[0]
        ).inc()
        self._metrics.latency.labels(self.endpoint, decision).observe(elapsed)
