"""A second gateway replica as its own OS process, with the same settings as a test's first.

`python -m tests.limits.replica SETTINGS_JSON PORT` serves `create_app(Settings(...))` on
127.0.0.1:PORT; `spawn_replica` starts it, waits for /healthz, and stops it on exit.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.settings import Settings
from tests.support.services import REPO_ROOT, end_process, free_port

START_S = 30.0


@contextlib.contextmanager
def spawn_replica(settings: Settings, directory: Path) -> Iterator[str]:
    """Serve `settings` in a new process; yield its base URL."""
    port = free_port()
    config = directory / f"replica-{port}.json"
    dumped = settings.model_dump(mode="json", exclude={"upstream_api_key", "config_file"})
    config.write_text(json.dumps(dumped))
    log = (directory / f"replica-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.limits.replica", str(config), str(port)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, (directory / f"replica-{port}.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.1)
        yield base
    finally:
        end_process(proc)
        log.close()


def main() -> None:
    from gateway.app import create_app
    from gateway.serve import run_server

    settings = Settings(**json.loads(Path(sys.argv[1]).read_text()))
    run_server(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]))


if __name__ == "__main__":
    main()
