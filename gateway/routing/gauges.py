"""Health and in-flight gauges per upstream target, read from the balancer at scrape time.

A collector rather than gauges set on the request path: the state changes on every
request, and reading it only when Prometheus asks costs the hot path nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.routing.balance import Balancer


class TargetGauges(Collector):
    def __init__(self, balancer: Balancer) -> None:
        self._balancer = balancer

    def collect(self) -> Iterator[Metric]:
        healthy = GaugeMetricFamily(
            "tacgw_upstream_healthy",
            "1 if the upstream target is in rotation on this replica, 0 while it is ejected.",
            labels=["model", "target"],
        )
        in_flight = GaugeMetricFamily(
            "tacgw_upstream_in_flight",
            "Requests to the upstream target whose answer has not ended yet.",
            labels=["model", "target"],
        )
        for state in self._balancer.states():
            labels = [state.target.model, state.target.name]
            healthy.add_metric(labels, 1.0 if self._balancer.up(state) else 0.0)
            in_flight.add_metric(labels, float(state.in_flight))
        yield healthy
        yield in_flight
