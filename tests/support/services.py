"""Session fixtures for the real services the tests run against.

``scripts/test`` starts a throwaway PostgreSQL and Redis, builds the pinned OPA and
tools/tlogverify, and exports where they are in ``TACGW_TEST_*`` variables. These
fixtures read them. When a variable is missing the test fails (never skips): a green run
must mean the real services were exercised.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

__all__ = [
    "OpaServer",
    "free_port",
    "opa_bin",
    "opa_server",
    "postgres_url",
    "redis_url",
    "tlogverify_bin",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = REPO_ROOT / "policies"
OPA_STARTUP_TIMEOUT = 20.0  # seconds


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(
            f"{name} is not set. The tests use real services: run them with "
            "`scripts/test [pytest args]`, which starts PostgreSQL, Redis and OPA.",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of an empty database, e.g. postgresql+asyncpg://postgres@host:port/db."""
    return _required_env("TACGW_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a throwaway Redis, e.g. redis://127.0.0.1:port/0."""
    return _required_env("TACGW_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def opa_bin() -> Path:
    """Path of the pinned ``opa`` binary."""
    path = Path(_required_env("TACGW_TEST_OPA_BIN"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"TACGW_TEST_OPA_BIN={path} is not an executable file; run `scripts/test`.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def tlogverify_bin() -> Path:
    """Path of tools/tlogverify, built by scripts/test with Go's reference tlog packages."""
    path = Path(_required_env("TACGW_TEST_TLOGVERIFY_BIN"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"TACGW_TEST_TLOGVERIFY_BIN={path} is not an executable file; run `scripts/test`.",
            pytrace=False,
        )
    return path


@dataclass(frozen=True)
class OpaServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _opa_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def opa_server(opa_bin: Path) -> Iterator[OpaServer]:
    """An ``opa run --server`` loaded with the repo's ``policies/``, for the whole session."""
    server = OpaServer(host="127.0.0.1", port=free_port())
    cmd = [
        str(opa_bin),
        "run",
        "--server",
        "--addr",
        f"{server.host}:{server.port}",
        "--log-level",
        "error",
    ]
    # git does not track empty directories, so policies/ may be absent in a fresh checkout.
    if POLICY_DIR.is_dir():
        cmd.append(str(POLICY_DIR))

    # Log to a file, not a pipe: an unread pipe can fill up and block the server.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_opa(proc, server, log)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_opa(proc: subprocess.Popen[bytes], server: OpaServer, log: IO[bytes]) -> None:
    deadline = time.monotonic() + OPA_STARTUP_TIMEOUT
    while not _opa_healthy(server.url):
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            output = log.read().decode(errors="replace")
            why = (
                f"exited with {proc.returncode}"
                if proc.returncode is not None
                else (f"did not answer /health within {OPA_STARTUP_TIMEOUT:.0f}s")
            )
            pytest.fail(f"OPA server {why}:\n{output}", pytrace=False)
        time.sleep(0.1)
