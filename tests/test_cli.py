"""The `tac-gateway` CLI and the quickstart, run as a user would: real processes."""

from __future__ import annotations

import contextlib
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

from tests.support.gateway import fresh_database_url
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
    org = json.loads(
        run_cli(["org", "create", "Grid Defenders", "--sector", "energy", "--json"], env, tmp_path)
    )
    assert org["status"] == "verified"
    grant = json.loads(
        run_cli(
            ["org", "grant", "Grid Defenders", "critical", "--evidence", "sector letter", "--json"],
            env,
            tmp_path,
        )
    )
    assert grant["tier"] == "critical" and grant["grant_id"]
    creds = json.loads(run_cli(["client", "create", "Grid Defenders", "--json"], env, tmp_path))
    assert creds["client_id"].startswith("tacc_") and creds["client_secret"].startswith("tacs_")
    model = json.loads(
        run_cli(
            [
                *("model", "add", "cyber", "--upstream", "http://127.0.0.1:9/v1"),
                *("--tier", "critical", "--json"),
            ],
            env,
            tmp_path,
        )
    )
    assert model == {"model": "cyber", "tier_floor": "critical"}
    # No request was made; the admin actions (grant, client) are in the audit log.
    events = json.loads(run_cli(["audit", "tail", "--json"], env, tmp_path))
    assert [e["endpoint"] for e in events] == ["admin.grant.create", "admin.client.create"]
    # The lists, for scripts: what was just created, and never a secret.
    orgs = json.loads(run_cli(["org", "list", "--json"], env, tmp_path))
    assert [(o["name"], o["tiers"]) for o in orgs] == [("Grid Defenders", ["critical"])]
    clients = json.loads(run_cli(["client", "list", "--json"], env, tmp_path))
    assert [c["client_id"] for c in clients] == [creds["client_id"]]
    assert "client_secret" not in clients[0]
    models = json.loads(run_cli(["model", "list", "--json"], env, tmp_path))
    assert models[0]["model"] == "cyber" and models[0]["targets"] == ["127.0.0.1:9=1"]
    # And for people: a table with a header row.
    table = run_cli(["org", "list"], env, tmp_path).splitlines()
    assert table[0].split() == ["name", "status", "tiers", "domain", "sector", "org_id"]
    assert table[1].split()[:6] == ["Grid", "Defenders", "verified", "critical", "-", "energy"]
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


@contextlib.contextmanager
def running_demo(cwd: Path, port: int, upstream_port: int) -> Iterator[str]:
    """`tac-gateway demo` in `cwd` until the block ends; yields everything it printed."""
    log = cwd / f"demo-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*CLI, "demo", "--port", str(port), "--upstream-port", str(upstream_port)],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90  # a bound: 4 workers share 2 cores
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"demo did not start: {log.read_text()}")
        yield log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`tac-gateway demo` in a scratch directory; yields (base URL, its output, cwd)."""
    port, upstream_port = free_port(), free_port()
    with running_demo(tmp_path, port, upstream_port) as output:
        yield f"http://127.0.0.1:{port}", output, tmp_path


TAIL_REST = ["tier", "model", "subject", "reasons"]


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
    header, *rows = out.strip().splitlines()[-3:]
    assert header.split() == ["ts", "decision_id", "decision", "status", *TAIL_REST]
    assert rows[0].split()[2:4] == ["allow", "200"] and "demo-general" in rows[0].split()
    assert rows[1].split()[2:4] == ["deny", "403"] and "tier_too_low" in rows[1]


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
    tail = run_cli(["audit", "tail", "-n", "2"], env, cwd).splitlines()
    # Full decision ids and UTC timestamps, so a row can be matched to a response header.
    assert tail[1].split()[1] == allowed.headers["x-decision-id"]
    assert tail[2].split()[1] == denied.headers["x-decision-id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", tail[1].split()[0])
    rows = json.loads(run_cli(["audit", "tail", "-n", "2", "--json"], env, cwd))
    assert [r["decision_id"] for r in rows] == [
        allowed.headers["x-decision-id"],
        denied.headers["x-decision-id"],
    ]
    assert rows[0]["model"] == "demo-general" and rows[1]["reasons"] == ["tier_too_low"]


def test_serve_migrates_and_becomes_ready(tmp_path: Path) -> None:
    """`tac-gateway serve` on a fresh SQLite file migrates it, then answers /readyz."""
    port = free_port()
    env = {
        **os.environ,
        "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        # Outside dev mode the signing keys are sealed with a key-encryption key.
        "TACGW_KEY_ENCRYPTION_KEY": "test-kek-" + "0123456789abcdef" * 2,
    }
    out = tmp_path / "serve.out"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    try:
        deadline = time.monotonic() + 90  # a bound: 4 workers share 2 cores
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not start")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": True, "policy": True, "limits": True}
        # The signing key is in the database, sealed; no key file is written.
        assert not (tmp_path / "var" / "signing-key.pem").exists()
        assert len(httpx.get(f"http://127.0.0.1:{port}/.well-known/jwks.json").json()["keys"]) == 1
        # One line at start says what it runs on; kinds only, no URL with credentials.
        assert out.read_text().splitlines() == [
            f"tac-gateway serving http://127.0.0.1:{port}"
            " (database: sqlite, policy: embedded, limits: memory)"
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_serve_refuses_invalid_settings(tmp_path: Path) -> None:
    """Bad settings stop the process at start, naming every bad field."""
    env = {
        **os.environ,
        "TACGW_TOKEN_TTL_S": "1",
        "TACGW_MAX_BODY_BYTES": "1",
        "TACGW_RATE_LIMIT": "garbage",
        "TACGW_RATE_LIMIT_STORAGE": "bogus://x",
        "TACGW_TOKEN_ENDPOINT_RATE_LIMIT": "often",
    }
    result = cli(["serve"], env, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first, *fields = result.stderr.splitlines()
    assert first == "error: invalid settings:"
    assert sorted(line.split(":")[0].strip() for line in fields) == [
        "max_body_bytes",
        "rate_limit",
        "rate_limit_storage",
        "token_endpoint_rate_limit",
        "token_ttl_s",
    ]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command, after checking it failed as an operator error."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_unmigrated_database_is_one_line(kind: str, tmp_path: Path, postgres_url: str) -> None:
    """Admin commands on a database nobody migrated say to run `tac-gateway migrate`."""
    url = fresh_database_url(kind, tmp_path, postgres_url, migrate=False)
    env = {**os.environ, "TACGW_DATABASE_URL": url}
    for args in (["org", "create", "Grid"], ["audit", "tail"], ["model", "list"]):
        line = one_line_error(cli(args, env, tmp_path))
        assert line == "error: the database is not migrated; run `tac-gateway migrate`"


def test_duplicate_organization_is_one_line(tmp_path: Path) -> None:
    """A second organization with the same name is refused in one line, the first kept."""
    env = sqlite_env(tmp_path)
    run_cli(["migrate"], env, tmp_path)
    run_cli(["org", "create", "Grid"], env, tmp_path)
    line = one_line_error(cli(["org", "create", "Grid"], env, tmp_path))
    assert line == "error: an organization named 'Grid' already exists"
    assert len(json.loads(run_cli(["org", "list", "--json"], env, tmp_path))) == 1


@pytest.mark.parametrize(
    "upstream", ["notaurl", "ftp://host/v1", "http://", "http:///v1", "http://host:port/v1"]
)
def test_model_upstream_must_be_http_url(upstream: str, tmp_path: Path) -> None:
    """An upstream that is not an http(s) URL with a host is refused, not stored."""
    env = sqlite_env(tmp_path)
    run_cli(["migrate"], env, tmp_path)
    args = ["model", "add", "m", "--upstream", upstream, "--tier", "public"]
    assert "must be an http(s) URL with a host" in one_line_error(cli(args, env, tmp_path))
    assert json.loads(run_cli(["model", "list", "--json"], env, tmp_path)) == []
    run_cli(
        ["model", "add", "m", "--upstream", "https://api.example/v1", "--tier", "public"],
        env,
        tmp_path,
    )
    assert json.loads(run_cli(["model", "list", "--json"], env, tmp_path))[0]["model"] == "m"


def test_demo_rerun_reuses_its_seed_and_checks_ports(tmp_path: Path) -> None:
    """A second demo run keeps the first run's clients and secrets; a taken port is named."""
    port, upstream_port = free_port(), free_port()
    env_file = tmp_path / "var" / "demo.env"
    with running_demo(tmp_path, port, upstream_port):
        first = env_file.read_text()
    with running_demo(tmp_path, port, upstream_port) as output:
        assert env_file.read_text() == first
        assert env_file.stat().st_mode & 0o777 == 0o600
        env = {**os.environ, "TACGW_DATABASE_URL": "sqlite:///./var/demo.db"}
        clients = json.loads(run_cli(["client", "list", "--json"], env, tmp_path))
        assert len(clients) == 3
        # The printed credentials are the ones in the file, and they still work.
        public_id = re.search(r"export PUBLIC_CLIENT_ID=(\S+)", first)
        public_secret = re.search(r"export PUBLIC_CLIENT_SECRET=(\S+)", first)
        assert public_id and public_secret and public_secret[1] in output
        token = httpx.post(
            f"http://127.0.0.1:{port}/oauth/token",
            auth=(public_id[1], public_secret[1]),
            data={"grant_type": "client_credentials"},
        )
        assert token.status_code == 200, token.text
        # While it runs, a third run stops before seeding anything, naming the busy port.
        for args in (
            ["--port", str(port), "--upstream-port", str(free_port())],
            ["--port", str(free_port()), "--upstream-port", str(upstream_port)],
        ):
            busy = args[1] if args[1] == str(port) else args[3]
            line = one_line_error(cli(["demo", *args], dict(os.environ), tmp_path))
            assert line.startswith(f"error: cannot listen on 127.0.0.1 port {busy}:")
        assert env_file.read_text() == first
