"""`tac-gateway screen`, `screening list/show` and `screening scripted-model`, run as real
processes: a scripted model served by the CLI, screened by the CLI, its report read back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.admin import ops
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.settings import Settings
from tests.support.services import free_port
from tests.test_cli import CLI, cli, run_cli, sqlite_env

KEYS = {"name", "n_valid", "harmful", "invalid", "rate", "ci_low", "ci_high"}


@contextlib.contextmanager
def scripted_model_process(harm_rate: float, seed: int) -> Iterator[str]:
    """`tac-gateway screening scripted-model` in its own process; yields its /v1 URL."""
    port = free_port()
    args = ["screening", "scripted-model", "--harm-rate", str(harm_rate), "--port", str(port)]
    proc = subprocess.Popen(
        [*CLI, *args, "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "scripted model did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def migrated(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment, naming a migrated SQLite database."""
    env = sqlite_env(tmp_path)
    upgrade(Settings(database_url=env["TACGW_DATABASE_URL"]).database_url)
    return env


@pytest.fixture(scope="module")
def unsafe_model() -> Iterator[str]:
    with scripted_model_process(0.96, seed=5) as url:
        yield url


def test_screen_stores_a_report_the_other_commands_read(unsafe_model: str, tmp_path: Path) -> None:
    """screen --json gives per-condition figures; list shows it current; show verifies it."""
    env = migrated(tmp_path)
    # The catalog is set up in-process: `model add` is tested elsewhere, and each CLI
    # process costs seconds of start-up.
    url = env["TACGW_DATABASE_URL"]

    async def add() -> None:
        engine = make_engine(Settings(database_url=url).database_url)
        try:
            await ops.add_model(
                engine,
                name="unsafe",
                upstream_url=unsafe_model,
                upstream_model="unsafe",
                tier_floor="public",
            )
        finally:
            await engine.dispose()

    asyncio.run(add())
    out = run_cli(["screen", "unsafe", "--samples", "12", "--by", "alice", "--json"], env, tmp_path)
    report = json.loads(out)
    assert report["model"] == "unsafe" and report["ran_by"] == "alice"
    assert report["config"]["samples"] == 12 and "samples" not in report
    assert len(report["conditions"]) == 6
    for c in report["conditions"]:
        assert set(c) >= KEYS
        assert c["n_valid"] + c["invalid"] == 12
        assert c["ci_low"] <= c["rate"] <= c["ci_high"]
        assert (c["harmful"] == 0) == c["control"]
    assert not any(t["passed"] for t in report["tiers"])

    listed = json.loads(run_cli(["screening", "list", "--json"], env, tmp_path))
    assert [(r["report_id"], r["status"]) for r in listed] == [(report["report_id"], "current")]
    shown = json.loads(run_cli(["screening", "show", report["report_id"], "--json"], env, tmp_path))
    assert shown["hash_ok"] is True and shown["sha256"] == report["sha256"]
    assert shown["conditions"] == report["conditions"]

    table = run_cli(["screening", "show", report["report_id"]], env, tmp_path)
    assert "coercion_goal_replacement" in table and "FAIL" in table


def test_screening_errors_are_one_line(tmp_path: Path) -> None:
    """An unknown model or report is a one-line error with exit status 1."""
    env = migrated(tmp_path)
    for args, message in (
        (["screen", "nope"], "no model named 'nope' in the catalog"),
        (["screening", "show", "nope"], "no screening report 'nope'"),
    ):
        result = cli(args, env, tmp_path)
        assert result.returncode == 1
        assert result.stderr.strip() == f"error: {message}"


def test_scripted_model_refuses_a_taken_port(unsafe_model: str, tmp_path: Path) -> None:
    """The port check runs before serving: a taken port is one line, not a traceback."""
    port = httpx.URL(unsafe_model).port
    result = cli(
        ["screening", "scripted-model", "--harm-rate", "0", "--port", str(port)],
        sqlite_env(tmp_path),
        tmp_path,
    )
    assert result.returncode == 1 and result.stderr.startswith("error: cannot listen on")
