"""The `tac-gateway` CLI and the quickstart, run as a user would: real processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import free_port

CLI = [sys.executable, "-m", "gateway.cli"]


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = cli(args, env, cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}


def test_admin_bootstrap(tmp_path: Path) -> None:
    """migrate, org create/grant, client create, model add, audit tail all work on SQLite."""
    env = sqlite_env(tmp_path)
    run_cli(["migrate"], env, tmp_path)
    org = json.loads(run_cli(["org", "create", "Grid Defenders"], env, tmp_path))
    assert org["status"] == "verified"
    grant = json.loads(
        run_cli(
            ["org", "grant", "Grid Defenders", "critical", "--evidence", "sector letter"],
            env,
            tmp_path,
        )
    )
    assert grant["tier"] == "critical" and grant["grant_id"]
    creds = json.loads(run_cli(["client", "create", "Grid Defenders"], env, tmp_path))
    assert creds["client_id"].startswith("tacc_") and creds["client_secret"].startswith("tacs_")
    model = json.loads(
        run_cli(
            ["model", "add", "cyber", "--upstream", "http://127.0.0.1:9/v1", "--tier", "critical"],
            env,
            tmp_path,
        )
    )
    assert model == {"model": "cyber", "tier_floor": "critical"}
    assert run_cli(["audit", "tail"], env, tmp_path) == ""
    # The secret is stored only as its hash.
    dump = (tmp_path / "cli.db").read_bytes()
    assert creds["client_secret"].encode() not in dump


def test_unknown_org_is_a_clear_error(tmp_path: Path) -> None:
    """Granting to an organization that does not exist exits non-zero with a message."""
    env = sqlite_env(tmp_path)
    run_cli(["migrate"], env, tmp_path)
    result = cli(["org", "grant", "Nobody", "critical"], env, tmp_path)
    assert result.returncode != 0 and "no organization named 'Nobody'" in result.stderr


def test_unknown_tier_is_refused(tmp_path: Path) -> None:
    """A tier the policy does not know (a typo) is refused, not stored as a dead grant."""
    env = sqlite_env(tmp_path)
    run_cli(["migrate"], env, tmp_path)
    run_cli(["org", "create", "Grid"], env, tmp_path)
    for args in (
        ["org", "grant", "Grid", "critcal"],
        ["model", "add", "m", "--upstream", "http://127.0.0.1:9/v1", "--tier", "crit"],
    ):
        result = cli(args, env, tmp_path)
        assert result.returncode != 0 and "unknown tier" in result.stderr
        assert "public, verified, critical" in result.stderr


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`tac-gateway demo` in a scratch directory; yields (base URL, its output, cwd)."""
    port, upstream_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*CLI, "demo", "--port", str(port), "--upstream-port", str(upstream_port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"demo did not start: {log.read_text()}")
        yield base, log.read_text(), tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _readme_quickstart() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_readme_quickstart_runs_verbatim(demo: tuple[str, str, Path]) -> None:
    """The README's quickstart block, run as is: allowed reply, denial, both audit rows."""
    _, _, cwd = demo
    venv = Path(sys.executable).parent.parent
    (cwd / ".venv").symlink_to(venv)  # the block runs from a checkout's root
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _readme_quickstart()],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Demo model demo-general says:" in out
    assert '"code":"tier_too_low"' in out
    tail = out.strip().splitlines()[-2:]
    assert "allow 200" in tail[0] and "model=demo-general" in tail[0]
    assert "deny  403" in tail[1] and "tier_too_low" in tail[1]


def test_quickstart_as_printed(demo: tuple[str, str, Path]) -> None:
    """The printed quickstart: token, an allowed call, a denied call, both in the audit tail."""
    base, output, cwd = demo
    creds = dict(
        re.findall(
            r"^(public|verified|critical)\s+.*?(tacc_\w+ / \S+)$", output, flags=re.MULTILINE
        )
    )
    assert set(creds) == {"public", "verified", "critical"}, output
    client_id, secret = creds["public"].split(" / ")
    token = httpx.post(
        f"{base}/oauth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}
    ).json()["access_token"]
    headers = {"authorization": f"Bearer {token}"}
    body = {"messages": [{"role": "user", "content": "hi"}]}
    allowed = httpx.post(
        f"{base}/v1/chat/completions", headers=headers, json={"model": "demo-general", **body}
    )
    assert allowed.status_code == 200
    denied = httpx.post(
        f"{base}/v1/chat/completions", headers=headers, json={"model": "demo-cyber", **body}
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "tier_too_low"

    assert (cwd / "var" / "demo.env").stat().st_mode & 0o777 == 0o600
    env = {**os.environ, "TACGW_DATABASE_URL": "sqlite:///./var/demo.db"}
    tail = run_cli(["audit", "tail", "-n", "2"], env, cwd)
    assert allowed.headers["x-decision-id"][:12] in tail
    assert denied.headers["x-decision-id"][:12] in tail
    assert "tier_too_low" in tail and "model=demo-general" in tail


def test_serve_migrates_and_becomes_ready(tmp_path: Path) -> None:
    """`tac-gateway serve` on a fresh SQLite file migrates it, then answers /readyz."""
    port = free_port()
    env = {**os.environ, "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not start")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": True, "policy": True}
        assert (tmp_path / "var" / "signing-key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_refuses_invalid_settings(tmp_path: Path) -> None:
    """Bad settings stop the process at start, naming every bad field."""
    env = {**os.environ, "TACGW_TOKEN_TTL_S": "1", "TACGW_MAX_BODY_BYTES": "1"}
    result = cli(["serve"], env, tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("invalid settings:")
    assert "token_ttl_s" in result.stderr and "max_body_bytes" in result.stderr
    assert "Traceback" not in result.stderr
