"""The wheel, installed as a user would: a fresh virtualenv, then `tac-gateway serve`.

Builds the wheel from a copy of the source tree (an in-tree build reuses ./build, where
files deleted from the repository linger), installs it into a new virtualenv that cannot
see this checkout — the dependencies hash-checked from requirements.lock, then the wheel
with `--no-deps` — and runs the gateway from an empty directory until /readyz is 200.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.services import REPO_ROOT, free_port

# Not part of a source distribution: environments, caches, build output, local state.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "var", "bench"
)


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.timeout(300)
def test_wheel_installs_and_serves_from_an_empty_directory(tmp_path: Path) -> None:
    """The wheel carries its migrations and policies: an installed gateway becomes ready."""
    source, dist, venv, workdir = (tmp_path / d for d in ("src", "dist", "venv", "run"))
    shutil.copytree(REPO_ROOT, source, ignore=IGNORED)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("tac_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"gateway/policies/authz.rego", "gateway/policies/data.json"} <= names
    assert "gateway/db/migrations/versions/0001_initial_tables.py" in names
    # The console's pages and its vendored htmx (no front-end build step anywhere).
    assert {"gateway/console/templates/base.html", "gateway/console/static/console.css"} <= names
    assert any(n.startswith("gateway/console/static/htmx-") for n in names)
    assert not any(n.endswith("_test.rego") for n in names)  # `opa test` files stay home

    # As the operators' docs and the Dockerfile install it: the runtime dependencies from
    # the lock, every wheel checked against its hash, then the package alone.
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, "--require-hashes", "-r", str(REPO_ROOT / "requirements.lock")])
    run([*pip, "--no-deps", str(wheel)])
    # The lock holds every dependency the wheel declares, at versions it accepts.
    run([str(python), "-m", "pip", "check"])

    # Nothing from this checkout or the test environment may leak into the installed one.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TACGW_", "PYTHON", "VIRTUAL_ENV"))
    }
    env |= {"TACGW_DEV_MODE": "1", "TACGW_DATABASE_URL": f"sqlite:///{workdir / 'gw.db'}"}
    workdir.mkdir()
    where = run(
        [str(python), "-c", "import gateway.settings as s; print(s.packaged_policies())"],
        env=env,
        cwd=workdir,
    )
    assert Path(where.strip()).is_relative_to(venv), where

    port = free_port()
    out = workdir / "serve.out"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [str(venv / "bin" / "tac-gateway"), "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        status, deadline = None, time.monotonic() + 60
        while status != 200 and time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200, out.read_text()
        assert out.read_text().startswith(f"tac-gateway serving http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
