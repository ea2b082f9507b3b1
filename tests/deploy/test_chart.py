"""The Helm chart: lint, render, strict Kubernetes schemas, and the properties we promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gateway.policy.bundle import load_bundle
from tests.deploy.chart import (
    CHART,
    KUBE_VERSIONS,
    PRODUCTION_VALUES,
    containers,
    env_of,
    helm,
    one,
    render,
)
from tests.support.services import REPO_ROOT

# Custom resources whose schema is not among kubernetes-validate's built-in kinds and is not
# vendored here: rendered, but not schema-checked. Every other kind must validate strictly.
UNCHECKED_KINDS = frozenset({"ServiceMonitor"})

VALUE_SETS = {"default": (), "production": (PRODUCTION_VALUES,)}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, helm_bin: Path) -> list[dict[str, Any]]:
    return render(helm_bin, *VALUE_SETS[request.param])


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_helm_lint_passes(helm_bin: Path, values: str) -> None:
    """`helm lint --strict` passes for the default values and the production example."""
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSIONS[-1]]
    for f in VALUE_SETS[values]:
        args += ["-f", str(f)]
    result = helm(helm_bin, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_every_resource_is_valid_kubernetes(helm_bin: Path, values: str, kube_version: str) -> None:
    """Each rendered resource validates against the real schemas, strictly (no unknown fields)."""
    resources = render(helm_bin, *VALUE_SETS[values], kube_version=kube_version)
    checked = []
    for resource in resources:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        if resource["kind"] in UNCHECKED_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is invalid on Kubernetes {kube_version}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{name}: no schema; validate it or list its kind in UNCHECKED_KINDS")
        checked.append(resource["kind"])
    assert {"Deployment", "Service", "Job", "ConfigMap", "NetworkPolicy"} <= set(checked)


def test_unchecked_kinds_are_only_rendered_on_request(helm_bin: Path) -> None:
    """The default install renders no unchecked kind; ServiceMonitor appears when enabled."""
    kinds = {r["kind"] for r in render(helm_bin)}
    assert not kinds & UNCHECKED_KINDS
    production = {r["kind"] for r in render(helm_bin, PRODUCTION_VALUES)}
    assert production >= UNCHECKED_KINDS


def test_service_monitor_scrapes_the_gateway_service(helm_bin: Path) -> None:
    """Unchecked by schema, so check what matters: it selects the Service and names its port."""
    resources = render(helm_bin, PRODUCTION_VALUES)
    monitor, service = one(resources, "ServiceMonitor"), one(resources, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"] and "http" in ports
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_pods_run_locked_down(rendered: list[dict[str, Any]]) -> None:
    """Non-root, no privilege escalation, all capabilities dropped, read-only root: every pod."""
    for kind in ("Deployment", "Job"):
        resource = one(rendered, kind)
        pod = resource["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for name, c in containers(resource).items():
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["requests"] and c["resources"]["limits"], name


def test_secrets_are_referenced_never_rendered(rendered: list[dict[str, Any]]) -> None:
    """The chart creates no Secret; database, Redis, signing key and upstream key come by name."""
    assert not [r for r in rendered if r["kind"] == "Secret"]
    env = env_of(containers(one(rendered, "Deployment"))["gateway"])
    secret_vars = (
        "TACGW_DATABASE_URL",
        "TACGW_RATE_LIMIT_STORAGE",
        "TACGW_UPSTREAM_API_KEY",
        "TACGW_AUDIT_LOG__KEY_SEED",
    )
    for var in secret_vars:
        assert set(env[var]) == {"secretKeyRef"}, var
    volumes = one(rendered, "Deployment")["spec"]["template"]["spec"]["volumes"]
    key = next(v for v in volumes if v["name"] == "signing-key")
    assert key["secret"]["secretName"]
    assert env["TACGW_SIGNING_KEY_FILE"].startswith("/etc/tacgw/keys/")


def test_production_secret_names_come_from_values(helm_bin: Path) -> None:
    """existingSecret/key in values name exactly the Secret entries the pods read."""
    resources = render(helm_bin, PRODUCTION_VALUES)
    env = env_of(containers(one(resources, "Deployment"))["gateway"])
    assert env["TACGW_DATABASE_URL"]["secretKeyRef"] == {"name": "tacgw-database", "key": "url"}
    assert env["TACGW_RATE_LIMIT_STORAGE"]["secretKeyRef"] == {"name": "tacgw-redis", "key": "url"}
    assert env["TACGW_AUDIT_LOG__KEY_SEED"]["secretKeyRef"] == {
        "name": "tacgw-audit-log-key",
        "key": "seed",
    }
    job_env = env_of(containers(one(resources, "Job"))["migrate"])
    assert job_env["TACGW_DATABASE_URL"] == env["TACGW_DATABASE_URL"]


def test_replicas_never_migrate_the_hook_job_does(rendered: list[dict[str, Any]]) -> None:
    """Replicas start with migrate_on_start off; a pre-install/pre-upgrade Job runs `migrate`."""
    gateway = containers(one(rendered, "Deployment"))["gateway"]
    assert env_of(gateway)["TACGW_MIGRATE_ON_START"] == "false"
    assert gateway["args"][0] == "serve"
    job = one(rendered, "Job", "-migrate")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    assert containers(job)["migrate"]["args"] == ["migrate"]
    # Same image as the replicas: the schema and the code that reads it ship together.
    assert containers(job)["migrate"]["image"] == gateway["image"]


def test_migration_pods_are_not_served(rendered: list[dict[str, Any]]) -> None:
    """The Job's pods match neither the Service, the Deployment nor the PodDisruptionBudget."""
    job_labels = one(rendered, "Job")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        one(rendered, "Service")["spec"]["selector"],
        one(rendered, "Deployment")["spec"]["selector"]["matchLabels"],
        one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert not selector.items() <= job_labels.items()


def test_gateway_decides_with_its_opa_sidecar(rendered: list[dict[str, Any]]) -> None:
    """The gateway asks the sidecar on loopback; both read the same policies ConfigMap."""
    deployment = one(rendered, "Deployment")
    c = containers(deployment)
    env = env_of(c["gateway"])
    assert env["TACGW_POLICY_ENGINE"] == "opa"
    opa_addr = next(a for a in c["opa"]["args"] if a.startswith("--addr="))
    assert opa_addr == "--addr=127.0.0.1:8181" and env["TACGW_OPA_URL"] == "http://127.0.0.1:8181"
    mounts = {m["mountPath"]: m["name"] for cont in c.values() for m in cont["volumeMounts"]}
    assert mounts[env["TACGW_POLICY_DIR"]] == mounts[c["opa"]["args"][-1]] == "policies"


def test_chart_policies_match_the_repository(helm_bin: Path) -> None:
    """files/policies is the repo's policies/ (tests excluded); `scripts/sync-chart-policies`."""
    chart_copy = load_bundle(CHART / "files" / "policies")
    repo = load_bundle(REPO_ROOT / "policies")
    assert chart_copy.modules == repo.modules and chart_copy.data == repo.data, (
        "helm/tac-gateway/files/policies is stale: run scripts/sync-chart-policies"
    )
    assert chart_copy.version == repo.version
    configmap = one(render(helm_bin), "ConfigMap", "-policies")
    assert set(configmap["data"]) == {*repo.modules, "data.json"}
    assert not [name for name in configmap["data"] if name.endswith("_test.rego")]


def test_policy_change_rolls_the_pods(helm_bin: Path) -> None:
    """A config change alters the pod template's checksum, so a rollout follows."""
    before = one(render(helm_bin), "Deployment")
    after = one(render(helm_bin, sets=("gateway.config.catalog_ttl_s=9",)), "Deployment")

    def checksum(deployment: dict[str, Any]) -> str:
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(before) != checksum(after)


def test_ingress_exposes_the_api_not_the_metrics(helm_bin: Path) -> None:
    """The Ingress routes what defenders, organizations and the console need; /admin, /audit,
    /metrics and the probes stay internal."""
    ingress = one(render(helm_bin, PRODUCTION_VALUES), "Ingress")
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/v1", "/oauth", "/.well-known", "/orgs", "/console"}
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]


def test_hpa_owns_the_replica_count(helm_bin: Path) -> None:
    """With autoscaling the Deployment leaves `replicas` to the HPA; without, it sets it."""
    scaled = render(helm_bin)
    assert "replicas" not in one(scaled, "Deployment")["spec"]
    hpa = one(scaled, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(scaled, "Deployment")["metadata"]["name"]
    fixed = render(helm_bin, sets=("autoscaling.enabled=false", "replicaCount=3"))
    assert one(fixed, "Deployment")["spec"]["replicas"] == 3
    assert not [r for r in fixed if r["kind"] == "HorizontalPodAutoscaler"]


def test_optional_resources_toggle(helm_bin: Path) -> None:
    """Ingress and ServiceMonitor are off by default; NetworkPolicy and PDB can be turned off."""
    kinds = {r["kind"] for r in render(helm_bin)}
    assert "Ingress" not in kinds and {"NetworkPolicy", "PodDisruptionBudget"} <= kinds
    sets = ("networkPolicy.enabled=false", "podDisruptionBudget.enabled=false")
    off = render(helm_bin, sets=sets)
    assert not {"NetworkPolicy", "PodDisruptionBudget"} & {r["kind"] for r in off}


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("securityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("securityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("gateway.issuer=http://gateway.example.com", "issuer"),
        ("externalDatabase.port=0", "port"),
        ("gateway.replicas=3", "replicas"),
        ("ingress.paths={/}", "paths"),
    ],
)
def test_schema_refuses_unsafe_or_unknown_values(
    helm_bin: Path, setting: str, complaint: str
) -> None:
    """values.schema.json stops an insecure or misspelled value before anything renders."""
    result = helm(helm_bin, "template", "tacgw", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr
