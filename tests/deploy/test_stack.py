"""deploy/stack: two replicas on shared PostgreSQL, Redis and OPA, as an operator runs it.

The script starts real processes (PostgreSQL, Redis, OPA, the demo upstream, two
`tac-gateway serve`); the test seeds them with the real CLI, calls each replica with the
`openai` SDK, revokes a grant in the shared database, and stops the stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest
import redis

from gateway.admin import ops
from gateway.db.engine import make_engine
from gateway.settings import Settings
from tests.support.dpop import DpopAuth, DpopKey
from tests.support.services import REPO_ROOT

STACK = REPO_ROOT / "deploy" / "stack"
START_TIMEOUT_S = 120  # the script bounds each of its own waits to 30 s
STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class Stack:
    dir: Path
    env: dict[str, str]  # what stack.env exports

    @property
    def gateways(self) -> list[str]:
        return self.env["TACGW_STACK_GATEWAYS"].split()

    def cli(self, *args: str) -> dict[str, object]:
        """The real `tac-gateway` CLI against the stack's PostgreSQL; its JSON output."""
        env = {**_clean_env(), "TACGW_DATABASE_URL": self.env["TACGW_DATABASE_URL"]}
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))


def _clean_env() -> dict[str, str]:
    # Nothing TACGW_* from the caller's shell leaks into the stack or the CLI.
    return {k: v for k, v in os.environ.items() if not k.startswith("TACGW_")}


def _script(command: str, directory: Path, env: dict[str, str], timeout: int) -> str:
    result = subprocess.run(
        [str(STACK), command, "--dir", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"deploy/stack {command}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0] if value else ""
    return values


@pytest.fixture(scope="module")
def stack(opa_bin: Path) -> Iterator[Stack]:
    # Under /tmp and traversable: the postgres user runs the database from inside it.
    directory = Path(tempfile.mkdtemp(prefix="tacgw-stack-", dir="/tmp"))
    directory.chmod(0o711)
    env = {**_clean_env(), "TACGW_STACK_OPA_BIN": str(opa_bin)}
    try:
        out = _script("start", directory, env, START_TIMEOUT_S)
        running = Stack(dir=directory, env=_read_env_file(directory / "stack.env"))
        for url in running.gateways:
            assert url in out  # the URLs are printed for the operator
        # The catalog, before any request: replicas re-read it only every catalog_ttl_s.
        upstream = running.env["TACGW_STACK_UPSTREAM_URL"]
        running.cli("model", "add", "cyber", "--upstream", upstream, "--tier", "critical")
        running.cli("model", "add", "general", "--upstream", upstream, "--tier", "public")
        # The critical tier requires a passing misalignment screening (docs/screening.md).
        running.cli("screen", "cyber", "--samples", "40", "--json")
        yield running
    finally:
        subprocess.run(
            [str(STACK), "stop", "--dir", str(directory)],
            env=env,
            capture_output=True,
            timeout=STOP_TIMEOUT_S,
            check=False,
        )
        subprocess.run(["rm", "-rf", str(directory)], check=False, timeout=60)


# The critical model takes DPoP-bound tokens; one key pair per test client. Proofs name
# the fleet's public URL (the issuer), as a client behind the load balancer would.
DPOP = DpopKey()


def _token(stack: Stack, base_url: str, client_id: str, secret: str) -> str:
    issuer = stack.env["TACGW_ISSUER"]
    reply = httpx.post(
        f"{base_url}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
        headers={"DPoP": DPOP.proof("POST", f"{issuer}/oauth/token")},
        timeout=10,
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def _chat(stack: Stack, base_url: str, token: str, model: str = "cyber") -> str:
    auth = DpopAuth(DPOP, token, public_base=stack.env["TACGW_ISSUER"])
    client = openai.OpenAI(
        base_url=f"{base_url}/v1",
        api_key=token,
        max_retries=0,
        timeout=10,
        http_client=httpx.Client(auth=auth),
    )
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "status of substation 7"}]
    )
    return str(reply.choices[0].message.content)


def _revoke(database_url: str, grant_id: int) -> None:
    async def go() -> None:
        # The URL as an operator writes it; Settings picks the async driver, as for the CLI.
        engine = make_engine(Settings(database_url=database_url).database_url)
        try:
            await ops.revoke_grant(engine, grant_id=grant_id, at=datetime.now(UTC))
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_replicas_serve_and_a_revocation_reaches_both(stack: Stack) -> None:
    """Both replicas serve a critical model; revoking the grant in the shared database is
    refused by both on the very next request, with tokens issued before the revocation."""
    assert len(stack.gateways) == 2
    stack.cli("org", "create", "Grid Defenders", "--sector", "energy")
    grant = stack.cli("org", "grant", "Grid Defenders", "critical", "--evidence", "sector letter")
    creds = stack.cli("client", "create", "Grid Defenders")
    client_id, secret = str(creds["client_id"]), str(creds["client_secret"])

    tokens = {url: _token(stack, url, client_id, secret) for url in stack.gateways}
    for url in stack.gateways:
        assert _chat(stack, url, tokens[url])
    # One signing key and issuer for the fleet: a token from one replica works on the other.
    first, second = stack.gateways
    assert _chat(stack, second, tokens[first])

    _revoke(stack.env["TACGW_DATABASE_URL"], int(str(grant["grant_id"])))
    for url in stack.gateways:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            _chat(stack, url, tokens[url])
        assert denied.value.code == "grant_revoked", url


def runbook_sql(marker: str) -> str:
    """The ```sql block of docs/operations.md that contains `marker`, verbatim."""
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one sql block with {marker!r} in docs/operations.md"
    return found[0]


def test_runbook_suspension_reaches_both_replicas(stack: Stack) -> None:
    """The incident runbook's SQL, run with psql as documented, cuts the organization off on
    both replicas at the next request, tokens already issued included."""
    stack.cli("org", "create", "Water Utility")
    creds = stack.cli("client", "create", "Water Utility")
    client_id, secret = str(creds["client_id"]), str(creds["client_secret"])
    tokens = {url: _token(stack, url, client_id, secret) for url in stack.gateways}
    for url in stack.gateways:
        assert _chat(stack, url, tokens[url], model="general")

    command = ["psql", stack.env["TACGW_DATABASE_URL"], "-q", "-v", "ON_ERROR_STOP=1"]
    psql = subprocess.run(
        [*command, "-v", "org=Water Utility"],
        input=runbook_sql("SET status = 'suspended'"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert psql.returncode == 0, psql.stderr

    for url in stack.gateways:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            _chat(stack, url, tokens[url], model="general")
        assert denied.value.code == "org_suspended", url
        refused = httpx.post(
            f"{url}/oauth/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
            timeout=10,
        )
        assert refused.status_code in (400, 401) and "access_token" not in refused.text


def test_replicas_share_the_stores(stack: Stack) -> None:
    """Both replicas are ready on the stack's database and OPA, and count limits in its Redis."""
    for url in stack.gateways:
        reply = httpx.get(f"{url}/readyz", timeout=5)
        assert reply.status_code == 200 and reply.json()["checks"] == {
            "database": True,
            "policy": True,
            "limits": True,  # the stack's Redis
        }
    assert httpx.get(f"{stack.env['TACGW_STACK_OPA_URL']}/health", timeout=5).status_code == 200
    # Prometheus finds both replicas through the targets file the stack writes (file_sd).
    targets = json.loads((stack.dir / "targets" / "gateway.json").read_text())
    hostports = sorted(url.removeprefix("http://") for url in stack.gateways)
    assert sorted(targets[0]["targets"]) == hostports
    for url in stack.gateways:
        assert "tacgw_requests_total{" in httpx.get(f"{url}/metrics", timeout=5).text
    # The requests of the test above were counted in the shared Redis, not in process memory.
    client = redis.Redis.from_url(stack.env["TACGW_STACK_REDIS_URL"])
    try:
        assert client.keys("LIMITS*")
    finally:
        client.close()


def test_stop_leaves_no_process_behind(stack: Stack) -> None:
    """`deploy/stack stop` ends every process it started; none still runs from its dir."""
    pids = [int(p.read_text()) for p in (stack.dir / "run").glob("*.pid")]
    assert len(pids) == 5  # two replicas, OPA, Redis, the demo upstream
    postmaster = stack.dir / "pg" / "data" / "postmaster.pid"
    pids.append(int(postmaster.read_text().split()[0]))
    _script("stop", stack.dir, _clean_env(), STOP_TIMEOUT_S)
    ps = subprocess.run(
        ["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    alive = [line for line in ps.splitlines() if not line.split()[1].startswith("Z")]
    leftovers = [line for line in alive if str(stack.dir) in line or int(line.split()[0]) in pids]
    assert leftovers == []
    assert not postmaster.exists()
    for url in stack.gateways:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=2)
