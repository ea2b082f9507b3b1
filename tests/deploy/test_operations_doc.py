"""docs/operations.md: the commands an operator copies from it do what it says."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from gateway.issuer.keys import load_file
from tests.support.services import REPO_ROOT

RUNBOOK = REPO_ROOT / "docs" / "operations.md"


def test_documented_signing_key_command_makes_a_key_the_gateway_loads(tmp_path: Path) -> None:
    """The `openssl genpkey` line (install) makes a P-256 key the gateway imports."""
    commands = set(re.findall(r"^\s*(openssl genpkey .*)$", RUNBOOK.read_text(), re.MULTILINE))
    assert len(commands) == 1, f"one key command, used at install: {commands}"
    subprocess.run(shlex.split(commands.pop()), cwd=tmp_path, check=True, timeout=30)
    key = load_file(tmp_path / "signing-key.pem")
    assert key.public_jwk["crv"] == "P-256" and key.kid


def test_runbook_names_files_that_exist() -> None:
    """Every repository path the runbook points to is there."""
    text = RUNBOOK.read_text()
    paths = set(re.findall(r"`((?:deploy|helm|scripts|docs|bench|policies)/[\w./-]+)`", text))
    paths |= {"Dockerfile", ".dockerignore"}
    missing = [p for p in sorted(paths) if not (REPO_ROOT / p).exists()]
    assert missing == [] and len(paths) > 10
