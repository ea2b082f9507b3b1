"""`migrate_on_start`: `serve` migrates on a laptop, and leaves the schema alone on replicas."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.services import free_port

STARTUP_TIMEOUT_S = 30.0


def serve_once(tmp_path: Path, **env: str) -> None:
    """Start `tac-gateway serve` on a fresh SQLite file until /healthz answers, then stop it."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TACGW_")}
    settings = {
        "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}",
        "TACGW_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
        "TACGW_ISSUER": f"http://127.0.0.1:{port}",
        # Not dev mode: the signing keys are sealed with a real key-encryption key.
        "TACGW_KEY_ENCRYPTION_KEY": "test-kek-" + "0123456789abcdef" * 2,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env={**clean, **settings, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"serve did not start:\n{proc.communicate()[0].decode()}")
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_serve_migrates_by_default(tmp_path: Path) -> None:
    """Without the setting, `serve` brings an empty database to the current schema first."""
    serve_once(tmp_path)
    assert {"alembic_version", "auditevent", "organization"} <= tables(tmp_path / "gw.db")


def test_replicas_serve_without_touching_the_schema(tmp_path: Path) -> None:
    """TACGW_MIGRATE_ON_START=false on a migrated database: the replica serves, and the
    schema is exactly what the migration made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACGW_")}
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate"],
        env={**env, "TACGW_DATABASE_URL": url},
        check=True,
        timeout=60,
    )
    before = tables(tmp_path / "gw.db")
    serve_once(tmp_path, TACGW_MIGRATE_ON_START="false")
    assert tables(tmp_path / "gw.db") == before


def test_replica_on_an_unmigrated_database_stops_and_says_so(tmp_path: Path) -> None:
    """Its signing keys live in the database: without the schema a replica cannot serve,
    so it exits naming the fix, and creates no table."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACGW_")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
        env={
            **env,
            "TACGW_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}",
            "TACGW_MIGRATE_ON_START": "false",
            "TACGW_KEY_ENCRYPTION_KEY": "test-kek-" + "0123456789abcdef" * 2,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
    )
    assert done.returncode != 0
    assert "tac-gateway migrate" in done.stdout + done.stderr
    assert tables(tmp_path / "gw.db") == set()
