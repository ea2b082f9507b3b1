"""Session fixtures for the real services the tests run against, and stoppable ones.

``scripts/test`` starts a throwaway PostgreSQL and Redis, builds the pinned OPA and
tools/tlogverify, and exports where they are in ``TACGW_TEST_*`` variables. These
fixtures read them. When a variable is missing the test fails (never skips): a green run
must mean the real services were exercised.

Fault tests stop and restart a dependency: they get an instance of their own
(`StoppableRedis`, `StoppablePostgres`, `StoppableOpa`, on loopback, same port across a
restart) so the session's shared services never go down under other tests.
"""

from __future__ import annotations

import os
import shutil
import signal
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
    "StoppableOpa",
    "StoppablePostgres",
    "StoppableRedis",
    "end_process",
    "free_port",
    "opa_bin",
    "opa_server",
    "postgres_url",
    "redis_url",
    "stoppable_redis",
    "tlogverify_bin",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = REPO_ROOT / "policies"
OPA_STARTUP_TIMEOUT = 20.0  # seconds
SERVICE_TIMEOUT = 30.0  # seconds for a stoppable service to start or stop


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


def _wait_for_port(port: int, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port}") from None
            time.sleep(0.05)


def end_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal `proc` and reap it (SIGKILL if it lingers)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=SERVICE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class StoppableRedis:
    """A redis-server of one test's own, on loopback, that can be stopped and restarted
    (it comes back empty: no persistence)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port, "redis-server", self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)
            self.proc = None


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[StoppableRedis]:
    """A started `StoppableRedis` for one test (outages: stop it, start it again)."""
    server = StoppableRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _pg_bin() -> Path:
    """Debian's versioned PostgreSQL binaries (outside PATH), newest version first."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    if not found:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql", pytrace=False)
    return found[-1].parent


class StoppablePostgres:
    """A PostgreSQL cluster of one test's own on loopback (trust auth, no fsync: throwaway),
    stopped (`pg_ctl stop -m fast`: connections are cut) and started on the same port."""

    def __init__(self) -> None:
        # Under /tmp: the postgres OS user (when running as root) must reach the directory,
        # and the socket path must stay short.
        self.root = Path(tempfile.mkdtemp(prefix="tacgw-pg-", dir="/tmp"))
        self.port = free_port()
        self.bin = _pg_bin()
        self.data = self.root / "data"
        self._initdb()

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's `postgres` database (create others from it)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, cwd=self.root, stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, timeout=SERVICE_TIMEOUT)  # fmt: skip

    def _initdb(self) -> None:
        os.chmod(self.root, 0o711)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-w", "-o", options, "start")  # fmt: skip
        _wait_for_port(self.port, "PostgreSQL")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop (if running) and delete the cluster."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class StoppableOpa:
    """An ``opa run --server`` of one test's own with the repo's policies, that can be
    killed (SIGKILL: no goodbye to open connections) and restarted on the same port."""

    def __init__(self, opa: Path, directory: Path) -> None:
        self.opa = opa
        self.server = OpaServer(host="127.0.0.1", port=free_port())
        self.log_path = directory / "opa.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        cmd = [str(self.opa), "run", "--server", "--addr", f"127.0.0.1:{self.server.port}",
               "--log-level", "error", str(POLICY_DIR)]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + OPA_STARTUP_TIMEOUT
        while not _opa_healthy(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"OPA did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            end_process(self.proc, signal.SIGKILL)
            self.proc = None
