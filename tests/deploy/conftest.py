"""Fixtures for the deployment checks: the pinned tools scripts/test builds or installs
(helm, promtool, the dockerfile-utils linter).

Like the service fixtures, a missing tool fails the test (never skips): a green run must
mean the chart was really linted, rendered and validated.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.services import REPO_ROOT


def pinned_version(name: str) -> str:
    """A version pinned in scripts/test (`readonly NAME_VERSION=...`), the one source of truth."""
    script = (REPO_ROOT / "scripts" / "test").read_text()
    match = re.search(rf"^readonly {name}_VERSION=(\S+)$", script, re.MULTILINE)
    assert match, f"scripts/test must pin {name}_VERSION"
    return match.group(1)


def _tool(variable: str) -> Path:
    raw = os.environ.get(variable, "").strip()
    path = Path(raw)
    if not raw or not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"{variable}={raw!r} is not an executable; run the tests with `scripts/test`, "
            "which builds it with Go and caches it in ~/.cache/tacgw.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return _tool("TACGW_TEST_HELM_BIN")


@pytest.fixture(scope="session")
def promtool_bin() -> Path:
    return _tool("TACGW_TEST_PROMTOOL_BIN")


@pytest.fixture(scope="session")
def dockerfile_lint_bin() -> Path:
    """`dockerfile-utils` (npm), which validates every instruction, flag and argument."""
    return _tool("TACGW_TEST_DOCKERFILE_LINT_BIN")
