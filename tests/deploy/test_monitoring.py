"""deploy/prometheus and deploy/grafana: checked by the real promtool, against our metrics."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.metrics import Metrics
from gateway.reasons import Reason
from tests.support.services import REPO_ROOT

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "tac-gateway.json"
# Grafana's variables, as a query would see them once substituted.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$job": ".*"}


def promtool(binary: Path, *args: str, cwd: Path = PROMETHEUS) -> str:
    result = subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def alert_queries() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for g in groups for rule in g["rules"]]


def series_names() -> set[str]:
    """Every series name the gateway exposes, from its real registry."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in Metrics().registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_alert_rules_check_and_their_unit_tests_pass(promtool_bin: Path) -> None:
    """`promtool check rules` accepts alerts.yml; `promtool test rules` fires them as expected."""
    assert "SUCCESS" in promtool(promtool_bin, "check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool(promtool_bin, "test", "rules", "alerts_test.yml")


def test_scrape_config_is_valid(promtool_bin: Path) -> None:
    """`promtool check config` accepts prometheus.yml and the rule files it names."""
    out = promtool(promtool_bin, "check", "config", "prometheus.yml")
    assert "is valid prometheus config file syntax" in out


def test_dashboard_queries_are_valid_promql(promtool_bin: Path, tmp_path: Path) -> None:
    """Each panel query parses: promtool checks them as recording rules."""
    rules = []
    for i, expr in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"tacgw:dashboard_panel_{i}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool(
        promtool_bin, "check", "rules", str(path), cwd=tmp_path
    )


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_use_only_metrics_and_reasons_that_exist(source: str) -> None:
    """No query names a metric the gateway lacks, or a reason code that is not a Reason."""
    queries = dashboard_queries() if source == "dashboard" else alert_queries()
    exposed = series_names()
    for expr in queries:
        for metric in re.findall(r"\btacgw_[a-z0-9_]+", expr):
            assert metric in exposed, f"{metric} is not exposed (in {expr!r})"
        for values in re.findall(r'reason=~?"([^"]+)"', expr):
            for reason in values.split("|"):
                assert reason in {r.value for r in Reason}, f"unknown reason {reason!r}"


def test_dashboard_covers_what_operators_watch() -> None:
    """Panels for requests, denials by reason, latency, limits and audit failures."""
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]

    def panel_using(*needles: str) -> bool:
        return any(
            all(n in t["expr"] for n in needles) for p in panels for t in p.get("targets", [])
        )

    assert panel_using("tacgw_requests_total", "by (decision)")
    assert panel_using("tacgw_requests_total", 'decision="deny"', "by (reason)")
    assert panel_using("histogram_quantile", "tacgw_request_duration_seconds_bucket")
    assert panel_using("tacgw_requests_total", 'reason="rate_limited"')
    assert panel_using("tacgw_audit_failures_total")
    assert panel_using("tacgw_policy_failures_total")
    assert len({p["id"] for p in panels}) == len(panels)
