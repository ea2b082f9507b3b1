"""The per-target metric children the forward stage updates on every try.

`prometheus_client`'s `labels(...)` costs a lock and a dict lookup per call; the
children are looked up once per target and kept, so a try pays for `inc`/`observe` only.
"""

from __future__ import annotations

from typing import Any

from gateway.metrics import Metrics
from gateway.routing.targets import Target


class Meter:
    __slots__ = ("_errors", "_labels", "_metrics", "latency", "requests")

    def __init__(self, metrics: Metrics, model: str, target: str) -> None:
        self._metrics = metrics
        self._labels = (model, target)
        self.requests = metrics.upstream_requests.labels(model, target)
        self.latency = metrics.upstream_latency.labels(model, target)
        self._errors: dict[str, Any] = {}

    def error(self, kind: str) -> Any:
        """The error counter of `kind` (a fixed word chosen by the gateway) for this target."""
        child = self._errors.get(kind)
        if child is None:
            child = self._errors[kind] = self._metrics.upstream_errors.labels(*self._labels, kind)
        return child


class Meters:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._by_target: dict[tuple[str, str], Meter] = {}

    def of(self, target: Target) -> Meter:
        key = (target.model, target.name)
        meter = self._by_target.get(key)
        if meter is None:
            meter = self._by_target[key] = Meter(self._metrics, *key)
        return meter
