"""The chart's OPA sidecar, run for real: its rendered arguments on a ConfigMap-shaped volume.

Kubernetes mounts a ConfigMap as symlinks into a hidden, timestamped directory
(`authz.rego -> ..data/authz.rego`, `..data -> ..2026_01_01...`). The sidecar must load each
policy once from that layout, and the gateway must compute the same policy version from it.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.policy.bundle import load_bundle
from tests.deploy.chart import containers, one, render
from tests.support.services import POLICY_DIR, end_process, free_port

STARTUP_TIMEOUT_S = 20.0


def configmap_volume(root: Path, data: dict[str, str]) -> Path:
    """Lay out `data` the way the kubelet mounts a ConfigMap volume."""
    stamp = root / "..2026_11_26_12_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, text in data.items():
        (stamp / name).write_text(text)
    (root / "..data").symlink_to(stamp.name)
    for name in data:
        (root / name).symlink_to(f"..data/{name}")
    return root


def _get(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    with urllib.request.urlopen(
        urllib.request.Request(url, data=payload, headers=headers), timeout=2
    ) as resp:
        return dict(json.load(resp))


@pytest.fixture(scope="module")
def sidecar(
    helm_bin: Path, opa_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The real OPA with the Deployment's own sidecar args; yields (decision URL base, volume)."""
    resources = render(helm_bin)
    configmap = one(resources, "ConfigMap", "-policies")
    volume = configmap_volume(tmp_path_factory.mktemp("cm") / "policies", configmap["data"])
    api, diag = free_port(), free_port()
    args = []
    for arg in containers(one(resources, "Deployment"))["opa"]["args"]:
        # Same flags, with this machine's free ports and the volume where the pod mounts it.
        if arg.startswith("--addr="):
            arg = f"--addr=127.0.0.1:{api}"
        elif arg.startswith("--diagnostic-addr="):
            arg = f"--diagnostic-addr=127.0.0.1:{diag}"
        elif arg == "/policies":
            arg = str(volume)
        args.append(arg)
    log = volume.parent / "opa.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(opa_bin), *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                _get(f"http://127.0.0.1:{diag}/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"OPA sidecar did not start:\n{log.read_text()}", pytrace=False)
                time.sleep(0.1)
        yield f"http://127.0.0.1:{api}", volume
    finally:
        end_process(proc)


def test_sidecar_loads_the_configmap_once_and_decides(sidecar: tuple[str, Path]) -> None:
    """Each module is loaded once (not again from ..data), and decisions come out right."""
    base, _ = sidecar
    policies = _get(f"{base}/v1/policies")["result"]
    assert len(policies) == len(load_bundle(POLICY_DIR).modules)
    allowed = {
        # The critical tier takes DPoP-bound tokens: this caller proved possession.
        "principal": {"sub": "c1", "scopes": ["models"], "pop": "dpop"},
        "trust": {"tier": "critical", "org_status": "verified"},
        "model": {
            "name": "cyber",
            "tier_floor": "critical",
            "screening": {"state": "current", "max_ci_high": 0.037},
        },
        "request": {"endpoint": "chat.completions"},
    }
    decision = _get(f"{base}/v1/data/tacgw/authz/decision", {"input": allowed})["result"]
    assert decision["allow"] is True and decision["obligations"]["max_tokens"] == 32768
    denied = {**allowed, "trust": {"tier": "public", "org_status": "verified"}}
    decision = _get(f"{base}/v1/data/tacgw/authz/decision", {"input": denied})["result"]
    assert decision["allow"] is False and decision["reasons"] == ["tier_too_low"]


def test_gateway_and_sidecar_agree_on_the_policy_version(sidecar: tuple[str, Path]) -> None:
    """The gateway reads the same volume: the version in its audit rows is the repo's policy."""
    _, volume = sidecar
    assert load_bundle(volume).version == load_bundle(POLICY_DIR).version
