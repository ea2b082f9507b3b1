"""The container image: Dockerfile properties, and its runtime on a read-only root filesystem."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.image import (
    DOCKERFILE,
    build_context,
    context_files,
    read_only_root,
    repository_files,
)
from tests.support.services import free_port

# Paths the image declares, and where the emulated runtime puts them.
IMAGE_VENV, IMAGE_APP, IMAGE_VOLUME = "/opt/tacgw", "/app", "/var/lib/tacgw"
STARTUP_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    froms = [i for i, s in enumerate(parser.structure) if s["instruction"] == "FROM"]
    return [s for s in parser.structure[froms[-1] :] if s["instruction"] != "COMMENT"]


def instruction(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [s["value"] for s in stage if s["instruction"] == name]


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"{value!r} is not exec form"
    return [str(p) for p in parsed]


def lint(binary: Path, dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "lint", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_lints_clean(dockerfile_lint_bin: Path, tmp_path: Path) -> None:
    """`dockerfile-utils lint` accepts it, and does refuse a broken instruction."""
    ok = lint(dockerfile_lint_bin, DOCKERFILE)
    assert ok.returncode == 0 and ok.stdout.strip() == "", ok.stdout + ok.stderr
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text()
    broken.write_text(text.replace("HEALTHCHECK --interval", "HEALTHCHECK --every"))
    bad = lint(dockerfile_lint_bin, broken)
    assert bad.returncode != 0 and "Unknown flag: every" in bad.stdout


def test_multi_stage_on_slim_python_311(dockerfile: DockerfileParser) -> None:
    """A build stage and a runtime stage, both python:3.11 slim; the runtime copies the venv."""
    assert dockerfile.is_multistage
    assert len(dockerfile.parent_images) == 2
    assert all(re.startswith("python:3.11-slim") for re in dockerfile.parent_images)
    copies = instruction(final_stage(dockerfile), "COPY")
    assert f"--from=build {IMAGE_VENV} {IMAGE_VENV}" in copies


def test_runs_as_a_numeric_non_root_user(dockerfile: DockerfileParser) -> None:
    """USER is numeric (runAsNonRoot can verify it) and not 0."""
    users = instruction(final_stage(dockerfile), "USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0


def test_fetches_nothing_by_url(dockerfile: DockerfileParser) -> None:
    """No ADD at all (so no ADD of a URL or an auto-extracted archive); no curl/wget piping."""
    assert not [s for s in dockerfile.structure if s["instruction"] == "ADD"]
    runs = " ".join(s["value"] for s in dockerfile.structure if s["instruction"] == "RUN")
    assert "curl" not in runs and "wget" not in runs and "://" not in runs


def test_healthcheck_probes_healthz(dockerfile: DockerfileParser) -> None:
    """HEALTHCHECK exists, in exec form, and asks the gateway's /healthz."""
    checks = instruction(final_stage(dockerfile), "HEALTHCHECK")
    assert len(checks) == 1
    command = healthcheck_command(dockerfile)
    assert command[0] == "python" and "http://127.0.0.1:8080/healthz" in command[-1]
    assert "--timeout=" in checks[0] and "--interval=" in checks[0]


def healthcheck_command(dockerfile: DockerfileParser) -> list[str]:
    value = instruction(final_stage(dockerfile), "HEALTHCHECK")[0]
    return exec_form(value.split("CMD", 1)[1].strip())


def test_same_image_serves_and_migrates(dockerfile: DockerfileParser) -> None:
    """ENTRYPOINT is the CLI; the default command serves, `migrate` is the Job's argument."""
    stage = final_stage(dockerfile)
    assert exec_form(instruction(stage, "ENTRYPOINT")[0]) == ["tac-gateway"]
    assert exec_form(instruction(stage, "CMD")[0])[0] == "serve"


def test_writable_paths_are_declared_volumes(dockerfile: DockerfileParser) -> None:
    """Every file the gateway writes (SQLite default, signing key) is under a VOLUME."""
    volumes = [p for v in instruction(final_stage(dockerfile), "VOLUME") for p in exec_form(v)]
    assert volumes == [IMAGE_VOLUME]
    env = dockerfile.envs
    assert env["TACGW_SIGNING_KEY_FILE"].startswith(IMAGE_VOLUME + "/")
    assert env["TACGW_DATABASE_URL"].removeprefix("sqlite:///").startswith(IMAGE_VOLUME + "/")
    # A read-only root cannot take .pyc files: they are compiled at build time instead.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    runs = [s["value"] for s in dockerfile.structure if s["instruction"] == "RUN"]
    assert any("compileall" in run for run in runs)
    # Dependencies only from the hash-checked lock; the package itself adds none.
    (install,) = [run for run in runs if "pip install" in run]
    assert "--require-hashes -r requirements.lock" in install
    assert "--no-deps ." in install


def test_build_context_holds_the_package_and_no_secrets() -> None:
    """`.dockerignore` admits the package and policies, and keeps var/, tests and venvs out."""
    admitted = set(context_files(repository_files()))
    assert {
        "pyproject.toml",
        "setup.py",
        "requirements.lock",
        "gateway/cli/__init__.py",
        "policies/authz.rego",
        "policies/data.json",
    } <= (admitted)
    assert not [p for p in admitted if p.startswith(("tests/", "var/", ".venv/", ".git/"))]
    assert not [p for p in admitted if p.endswith("_test.rego") or "__pycache__" in p]
    probe = ["var/signing-key.pem", ".venv/bin/python", "gateway/__pycache__/x.pyc", "deploy/x"]
    assert context_files(probe) == []


# ---------------------------------------------------------------------------- runtime


@pytest.fixture(scope="module")
def image_root() -> Iterator[Path]:
    """/opt/tacgw, /app and /var/lib/tacgw of the image, laid out under one temp dir."""
    # Not pytest's tmp_path: it is private to root, and the image's user must traverse it.
    root = Path(tempfile.mkdtemp(prefix="tacgw-image-"))
    root.chmod(0o755)
    try:
        context = build_context(root / "context")
        site = root / "opt-tacgw"
        # The Dockerfile's build step: a regular install of the context, then bytecode.
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        pip += ["--no-deps", "--no-compile", "--target", str(site), str(context)]
        subprocess.run(pip, check=True, timeout=180)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(site)], check=True)
        (root / "app").mkdir()  # WORKDIR: empty; the policies are package data
        volume, tmp = root / "var-lib-tacgw", root / "tmp"
        volume.mkdir(mode=0o700)
        tmp.mkdir(mode=0o1777)
        tmp.chmod(0o1777)
        yield root
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False, timeout=60)


def image_env(dockerfile: DockerfileParser, root: Path) -> dict[str, str]:
    """The image's ENV, its paths mapped under `root`; PYTHONPATH stands in for the venv."""
    mapping = {
        IMAGE_VENV: str(root / "opt-tacgw"),
        IMAGE_APP: str(root / "app"),
        IMAGE_VOLUME: str(root / "var-lib-tacgw"),
    }
    env = {"PATH": f"{root / 'opt-tacgw' / 'bin'}:{Path(sys.executable).parent}:/usr/bin:/bin"}
    for name, value in dockerfile.envs.items():
        if name == "PATH":
            continue
        for image_path, here in mapping.items():
            value = value.replace(image_path, here)
        env[name] = value
    # Supplied at run time from a Secret (the chart's keyEncryptionKey), never baked in.
    env["TACGW_KEY_ENCRYPTION_KEY"] = "test-kek-" + "0123456789abcdef" * 2
    env["PYTHONPATH"] = str(root / "opt-tacgw")
    env["TMPDIR"] = str(root / "tmp")
    return env


def run_in_image(
    dockerfile: DockerfileParser, root: Path, args: list[str]
) -> subprocess.Popen[bytes]:
    user = instruction(final_stage(dockerfile), "USER")[0]
    volume = root / "var-lib-tacgw"
    if os.geteuid() == 0:
        uid, gid = (int(x) for x in user.split(":"))
        os.chown(volume, uid, gid)
    entrypoint = exec_form(instruction(final_stage(dockerfile), "ENTRYPOINT")[0])
    command = [str(root / "opt-tacgw" / "bin" / entrypoint[0]), *args]
    return subprocess.Popen(
        read_only_root([volume, root / "tmp"], command, user=user),
        cwd=root / "app",
        env=image_env(dockerfile, root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_image_migrates_and_serves_on_a_read_only_root(
    dockerfile: DockerfileParser, image_root: Path
) -> None:
    """As the image's user, with only the volume and /tmp writable: the installed package
    (not the checkout) migrates, serves, and passes the image's own HEALTHCHECK."""
    migrate = run_in_image(dockerfile, image_root, ["migrate"])
    out, _ = migrate.communicate(timeout=60)
    assert migrate.returncode == 0, out.decode()
    assert (image_root / "var-lib-tacgw" / "tacgw.db").is_file()

    port = free_port()
    cmd = exec_form(instruction(final_stage(dockerfile), "CMD")[0])
    # The image listens on 0.0.0.0:8080; here, loopback and a free port.
    cmd = [{"0.0.0.0": "127.0.0.1", "8080": str(port)}.get(a, a) for a in cmd]
    server = run_in_image(dockerfile, image_root, cmd)
    try:
        probe = [a.replace(":8080/", f":{port}/") for a in healthcheck_command(dockerfile)]
        env = image_env(dockerfile, image_root)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while subprocess.run(probe, env=env, capture_output=True, timeout=10).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                output = server.communicate()[0].decode()
                pytest.fail(f"gateway did not become healthy ({shlex.join(probe)}):\n{output}")
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            assert json.load(resp)["checks"] == {"database": True, "policy": True, "limits": True}
        # The signing key was created in the database in the volume, sealed with the KEK.
        with sqlite3.connect(image_root / "var-lib-tacgw" / "tacgw.db") as db:
            (sealed,) = db.execute("SELECT private_key FROM signingkey").fetchone()
        assert sealed.startswith("aesgcm1.") and "PRIVATE KEY" not in sealed
    finally:
        server.terminate()
        server.communicate(timeout=15)


def test_installed_package_is_the_one_running(
    dockerfile: DockerfileParser, image_root: Path
) -> None:
    """The emulation imports the regular install, not the test venv's editable checkout."""
    where = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        env=image_env(dockerfile, image_root),
        cwd=image_root / "app",  # as WORKDIR; the checkout's cwd would shadow the install
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert where.startswith(str(image_root / "opt-tacgw"))
