"""Render the Helm chart with the real helm binary and read back what it produced."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.services import REPO_ROOT

CHART = REPO_ROOT / "helm" / "tac-gateway"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
RELEASE = "tacgw"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest that
# kubernetes-validate ships schemas for: every resource must be valid on both.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
HELM_TIMEOUT_S = 60


def helm(helm_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin), *args],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT_S,
        check=False,
        # Rendering never talks to a cluster, whatever kubeconfig the environment names.
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
    )


def render(
    helm_bin: Path,
    *value_files: Path,
    kube_version: str = KUBE_VERSIONS[-1],
    sets: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """`helm template` → the rendered resources (hooks included), as dicts."""
    args = ["template", RELEASE, str(CHART), "--namespace", "tacgw"]
    args += ["--kube-version", kube_version]
    for f in value_files:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    result = helm(helm_bin, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(resources: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [
        r for r in resources if r["kind"] == kind and r["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
    return found[0]


def containers(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = resource["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """Name → value, or → the valueFrom mapping for variables taken from elsewhere."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
