"""`opa test policies/ --coverage` with the real OPA: the Rego tests pass and cover the policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.services import POLICY_DIR, REPO_ROOT

MIN_COVERAGE = 90.0  # percent of policy lines, per policy file (test files excluded)


def test_rego_tests_pass_with_coverage(opa_bin: Path) -> None:
    """Every policies/*_test.rego test passes, and each policy file is ≥ 90% covered."""
    result = subprocess.run(
        [str(opa_bin), "test", "policies/", "--coverage", "--format=json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    report = json.loads(result.stdout)
    policies = {
        name: info.get("coverage", 0.0)
        for name, info in report["files"].items()
        if not name.endswith("_test.rego")
    }
    expected = {f"policies/{p.name}" for p in POLICY_DIR.glob("*.rego")}
    assert set(policies) == {p for p in expected if not p.endswith("_test.rego")}
    low = {name: cov for name, cov in policies.items() if cov < MIN_COVERAGE}
    assert not low, f"policy coverage below {MIN_COVERAGE}%: {low}"
