"""PostgreSQL, Redis and OPA for bench/compare.py: throwaway, loopback only, bounded waits.

Started the way deploy/stack starts them (PostgreSQL with fsync on, as in production;
Redis without persistence; OPA with the repository's policies and the chart's flags) and
all stopped by `Services.close()`, which compare.py calls on every exit path. Nothing is
started until a variant asks for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

from run import Procs, _free_port

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tacgw"
OPA_VERSION = "v1.22.3"  # the pin of scripts/test
WAIT_S = 30.0


def _wait(what: str, ok: object, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with suppress(Exception):
            if ok():  # type: ignore[operator]
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer within {WAIT_S:.0f}s")


def _pg_bin() -> Path:
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not dirs:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)")
    return dirs[-1]


class Services:
    """What the variants need, started on first use, stopped together."""

    def __init__(self, procs: Procs, tmp: Path) -> None:
        self._procs = procs
        # Under /tmp with a short path: the postgres user must reach it, and the socket
        # path must stay under 108 bytes.
        self._dir = tmp
        self._pg: tuple[Path, Path, int] | None = None  # bin, data dir, port
        self._redis: str | None = None
        self._opa: str | None = None
        self.versions: dict[str, str] = {}

    # ------------------------------------------------------------------ PostgreSQL
    def _as_postgres(self, argv: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root.
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def postgres_database(self, name: str) -> str:
        """A new, empty database `name`; its URL."""
        if self._pg is None:
            self._start_postgres()
        assert self._pg is not None
        pg_bin, _, port = self._pg
        subprocess.run(
            [str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name],
            check=True,
            timeout=WAIT_S,
        )
        return f"postgresql://postgres@127.0.0.1:{port}/{name}"

    def _start_postgres(self) -> None:
        pg_bin, port = _pg_bin(), _free_port()
        root = self._dir / "pg"
        root.mkdir(mode=0o755)
        os.chmod(self._dir, 0o711)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        data = root / "data"
        subprocess.run(
            self._as_postgres(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            cwd=root,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=100"
        subprocess.run(
            self._as_postgres(
                [
                    str(pg_bin / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "server.log"),
                    "-w",
                    "-t",
                    str(int(WAIT_S)),
                    "-o",
                    opts,
                    "start",
                ]
            ),
            check=True,
            cwd=root,
            stdout=subprocess.DEVNULL,
            timeout=WAIT_S + 10,
        )
        self._pg = (pg_bin, data, port)
        self.versions["postgresql"] = pg_bin.parent.name

    # ------------------------------------------------------------------ Redis
    def redis(self) -> str:
        if self._redis is None:
            port = _free_port()
            log = self._dir / "redis.log"
            proc = self._procs.start(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._dir),
                ],
                log=log,
            )
            cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"]
            _wait(
                "Redis",
                lambda: (
                    subprocess.run(cli, capture_output=True, timeout=2).stdout.strip() == b"PONG"
                ),
                proc,
            )
            self._redis = f"redis://127.0.0.1:{port}/0"
            out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
            self.versions["redis"] = out.stdout.split()[2].removeprefix("v=")
        return self._redis

    # ------------------------------------------------------------------ OPA
    def opa(self) -> str:
        if self._opa is None:
            opa = CACHE / f"opa-{OPA_VERSION}" / "opa"
            if not opa.exists():
                raise RuntimeError(f"{opa} not found: run scripts/test once (it builds OPA)")
            port = _free_port()
            proc = self._procs.start(
                [
                    str(opa),
                    "run",
                    "--server",
                    "--addr",
                    f"127.0.0.1:{port}",
                    "--ignore=.*",
                    "--ignore=*_test.rego",
                    "--disable-telemetry",
                    "--log-level",
                    "error",
                    str(REPO / "policies"),
                ],
                log=self._dir / "opa.log",
            )
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                    return bool(r.status == 200)

            _wait("OPA", healthy, proc)
            self._opa = url
            self.versions["opa"] = OPA_VERSION
        return self._opa

    def close(self) -> None:
        """Stop PostgreSQL (Redis and OPA are children in `Procs`, stopped with the rest)."""
        if self._pg is not None:
            pg_bin, data, _ = self._pg
            self._pg = None
            for mode in ("fast", "immediate"):
                done = subprocess.run(
                    self._as_postgres(
                        [
                            str(pg_bin / "pg_ctl"),
                            "-D",
                            str(data),
                            "-m",
                            mode,
                            "-w",
                            "-t",
                            "15",
                            "stop",
                        ]
                    ),
                    cwd=data.parent,
                    capture_output=True,
                    timeout=30,
                )
                if done.returncode == 0:
                    break
