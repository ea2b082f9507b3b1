"""`tac-gateway demo`: the quickstart on embedded defaults, with the demo model server.

Everything lives in ./var: the SQLite database, the signing key, and `demo.env`, which
holds the gateway URL, the database URL and one client per tier so that the README's
quickstart commands run verbatim after `. var/demo.env`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.app import create_app
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.demo.screening import describe, screen_catalog
from gateway.demo.scripted_model import create_scripted_app
from gateway.demo.seed import DemoClient, seed
from gateway.demo.upstream import create_upstream_app
from gateway.policy.bundle import load_bundle
from gateway.screening.report import ScreeningPolicy
from gateway.screening.scripted import ScriptedModel
from gateway.serve import run_server
from gateway.settings import Settings

VAR = Path("var")
UNSAFE_PATH = "/unsafe"  # where the demo model server also serves the scripted unsafe model
DATABASE_URL = "sqlite:///./var/demo.db"


def run_demo(*, port: int, upstream_port: int) -> None:
    settings = Settings(
        dev_mode=True,
        database_url=DATABASE_URL,
        signing_key_file=VAR / "demo-signing-key.pem",
        audit_log={"key_file": VAR / "demo-audit-log-key.pem"},
        issuer=f"http://127.0.0.1:{port}",
    )
    upgrade(settings.database_url)
    env_file = VAR / "demo.env"
    known = _read_env(env_file)
    # The model servers first: the catalog is screened through them before serving.
    _start_upstream(upstream_port)
    _wait_for(f"http://127.0.0.1:{upstream_port}/healthz")
    clients, screening = asyncio.run(_seed(settings, upstream_port, known))
    base = f"http://127.0.0.1:{port}"
    _write_env(env_file, base, clients)
    _print_intro(base, clients, env_file, screening)
    run_server(create_app(settings, served=True), host="127.0.0.1", port=port, settings=settings)


async def _seed(
    settings: Settings, upstream_port: int, known: dict[str, tuple[str, str]]
) -> tuple[list[DemoClient], list[str]]:
    engine = make_engine(settings.database_url)
    policy = ScreeningPolicy.from_policy_data(load_bundle(settings.policy_dir).data)
    try:
        clients = await seed(
            engine,
            upstream_url=f"http://127.0.0.1:{upstream_port}/v1",
            unsafe_upstream_url=f"http://127.0.0.1:{upstream_port}{UNSAFE_PATH}/v1",
            known=known,
        )
        statuses = await screen_catalog(engine, settings=settings, policy=policy)
        return clients, describe(statuses, policy)
    finally:
        await engine.dispose()


def _read_env(path: Path) -> dict[str, tuple[str, str]]:
    """tier -> (client id, secret) from a previous run's env file; empty if there is none."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line)  # undoes the quoting _write_env applied
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            values[name] = value
    known = {}
    for tier in ("public", "verified", "critical"):
        client_id = values.get(f"{tier.upper()}_CLIENT_ID")
        secret = values.get(f"{tier.upper()}_CLIENT_SECRET")
        if client_id and secret:
            known[tier] = (client_id, secret)
    return known


def _write_env(path: Path, base: str, clients: list[DemoClient]) -> None:
    lines = [f"export TACGW_URL={base}", f"export TACGW_DATABASE_URL={DATABASE_URL}"]
    for c in clients:
        prefix = c.tier.upper()
        lines += [
            f"export {prefix}_CLIENT_ID={shlex.quote(c.client_id)}",
            f"export {prefix}_CLIENT_SECRET={shlex.quote(c.client_secret)}",
        ]
    text = "\n".join(lines) + "\n"
    if path.is_file() and path.read_text() == text:
        return  # a rerun on the same ports: nothing changed, keep the file as it is
    # Written whole under a temporary name, 0600 from the start (it holds client secrets),
    # then renamed: a crash never leaves a half-written file with the only copy of a secret.
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to the gateway's server in the main thread.
        yield


def _start_upstream(port: int) -> None:
    """The demo model server in a daemon thread: it cannot outlive the demo process.

    It also serves, below /unsafe, the scripted model behind `demo-unsafe`.
    """
    unsafe = create_scripted_app(ScriptedModel(harm_rate=0.96), name="demo-unsafe")
    app = Starlette(
        routes=[Mount(UNSAFE_PATH, app=unsafe), Mount("/", app=create_upstream_app("demo"))]
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    threading.Thread(target=_ThreadServer(config).run, name="demo-upstream", daemon=True).start()


def _wait_for(url: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"demo model server did not start at {url}")


def _print_intro(
    base: str, clients: list[DemoClient], env_file: Path, screening: list[str]
) -> None:
    print("\nTAC Gateway demo: SQLite ./var/demo.db, embedded Rego, memory rate limits.")
    print("Upstream: the DEMO model server (not a model). Serve a real one with")
    print("  tac-gateway model add NAME --upstream http://vllm:8000/v1 --tier verified\n")
    print(f"{'tier':9} {'organization':27} client_id / client_secret")
    for c in clients:
        print(f"{c.tier:9} {c.org:27} {c.client_id} / {c.client_secret}")
    print("\nMisalignment screening of the catalog (docs/screening.md):")
    for line in screening:
        print(f"  {line}")
    print(
        f"""
Credentials and URLs are in {env_file} (mode 0600). In another terminal:

  . {env_file}
  TOKEN=$(curl -s -u "$PUBLIC_CLIENT_ID:$PUBLIC_CLIENT_SECRET" \\
          -d grant_type=client_credentials "$TACGW_URL/oauth/token" \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s "$TACGW_URL/v1/chat/completions" -H "Authorization: Bearer $TOKEN" \\
       -H 'content-type: application/json' \\
       -d '{{"model":"demo-general","messages":[{{"role":"user","content":"hi"}}]}}'    # allowed
  curl -s "$TACGW_URL/v1/chat/completions" -H "Authorization: Bearer $TOKEN" \\
       -H 'content-type: application/json' \\
       -d '{{"model":"demo-cyber","messages":[{{"role":"user","content":"hi"}}]}}'      # denied
  .venv/bin/tac-gateway audit tail -n 5

With the VERIFIED client's token, demo-unsafe is refused (403 model_failed_screening)
and left out of /v1/models; `.venv/bin/tac-gateway screening list` shows the reports.

Gateway listening on {base} (Ctrl-C to stop)
""",
        flush=True,
    )
