"""Metrics: Prometheus counters and histograms by tier, model, decision and reason, and
per upstream target (tries, errors, latency; health and in-flight are gauges read at
scrape time, `gateway.routing.gauges`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.screening.store import STATES, ScreeningStatus

# (model name, status now) for every model of the catalog snapshot; no database read.
Statuses = Callable[[datetime], Iterable[tuple[str, ScreeningStatus]]]


class Metrics:
    """One registry per app, so that two apps in one process (tests) never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tacgw_requests",
            "Access decisions by endpoint, tier, model, decision and reason.",
            ["endpoint", "tier", "model", "decision", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tacgw_request_duration_seconds",
            "Time from request to response start (decision, audit and upstream headers).",
            ["endpoint", "decision"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.policy_failures = Counter(
            "tacgw_policy_failures",
            "Policy evaluations that failed and were denied (fail closed).",
            ["engine", "reason"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "tacgw_tokens",
            "Tokens used by allowed calls, by tier, model, kind (prompt or completion) and "
            "source (upstream: the model server's figure; estimated: counted by the gateway).",
            ["tier", "model", "kind", "source"],
            registry=self.registry,
        )
        self.limits_fail_open = Counter(
            "tacgw_limits_fail_open",
            "Requests admitted uncounted because the limits storage failed (tiers set to open).",
            ["tier"],
            registry=self.registry,
        )
        self.usage_write_failures = Counter(
            "tacgw_usage_write_failures",
            "Flushes of daily usage to the database that failed (retried at the next flush).",
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "tacgw_policy_reloads",
            "Policy reloads by result (a refused policy leaves the old one serving).",
            ["result"],
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "tacgw_audit_failures",
            "Audit writes that failed (request refused).",
            registry=self.registry,
        )
        # Per upstream target; `target` is the target's name in the catalog, `model` the
        # catalog's model name: both set by an admin, never by a caller.
        self.upstream_requests = Counter(
            "tacgw_upstream_requests",
            "Tries sent to an upstream target (a request that fails over counts on each).",
            ["model", "target"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "tacgw_upstream_errors",
            "Failed tries and broken answers by kind: connect, timeout, transport, status_5xx,"
            " redirect, too_large, stream_broken, stream_malformed.",
            ["model", "target", "kind"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "tacgw_upstream_latency_seconds",
            "Time from sending a try to the upstream's response headers.",
            ["model", "target"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )

        # `labels(...)` takes a lock and validates and copies the label values on every
        # call; the decision counters are hit once per request with few distinct tuples
        # (label values come from the catalog and tier list), so their children are kept
        # here. Same children, same counts: a cache of what `labels` would return.
        self._decisions: dict[tuple[str, ...], tuple[Counter, Histogram]] = {}

    def count_decision(
        self, endpoint: str, tier: str, model: str, decision: str, reason: str, seconds: float
    ) -> None:
        """One access decision: `requests` counted and its `latency` observed."""
        key = (endpoint, tier, model, decision, reason)
        children = self._decisions.get(key)
        if children is None:
            children = self._decisions[key] = (
                self.requests.labels(endpoint, tier, model, decision, reason),
                self.latency.labels(endpoint, decision),
            )
        children[0].inc()
        children[1].observe(seconds)

    def watch_screening(self, statuses: Statuses) -> None:
        """Export each catalog model's screening state at every scrape."""
        self.registry.register(_ScreeningCollector(statuses))


class _ScreeningCollector(Collector):
    """Read at scrape time, so that a report that expires shows as expired without a reload."""

    def __init__(self, statuses: Statuses) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "tacgw_model_screening_state",
            "1 for the screening state of each catalog model: missing, expired, stale, current.",
            labels=["model", "state"],
        )
        bound = GaugeMetricFamily(
            "tacgw_model_screening_max_ci_high",
            "Highest upper 95% bound of harmful behaviour in the model's latest report.",
            labels=["model"],
        )
        expires = GaugeMetricFamily(
            "tacgw_model_screening_expires_timestamp_seconds",
            "When the model's latest screening report stops counting (Unix time).",
            labels=["model"],
        )
        for model, status in self._statuses(datetime.now(UTC)):
            for name in STATES:
                state.add_metric([model, name], 1.0 if status.state == name else 0.0)
            if status.max_ci_high is not None:
                bound.add_metric([model], status.max_ci_high)
            if status.expires_at is not None:
                expires.add_metric([model], status.expires_at.timestamp())
        yield from (state, bound, expires)
