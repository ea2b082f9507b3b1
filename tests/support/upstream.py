"""A demo upstream of one test's own, and its counters, for tests that read its stats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.demo.upstream import create_upstream_app
from tests.support.gateway import RunningGateway
from tests.support.uvicorn_server import serve

__all__ = ["dedicated_upstream"]  # the fixture, for conftest; helpers are imported by name

WAIT_S = 5.0  # upper bound for anything the gateway does in the background


@pytest.fixture
def dedicated_upstream() -> Iterator[str]:
    """A demo upstream of this test's own, so its stats count only this test's calls."""
    with serve(create_upstream_app("dedicated")) as base:
        yield base


def stats(base: str) -> dict[str, Any]:
    """The dedicated upstream's counters."""
    return dict(httpx.get(f"{base}/_demo/stats", timeout=30).json())


def wait_for_stat(base: str, key: str, above: int) -> int:
    """Poll until the counter `key` exceeds `above`; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while (value := stats(base)[key]) <= above:
        assert time.monotonic() < deadline, f"{key} stayed at {value}"
        time.sleep(0.02)
    return int(value)


def wait_for_rows(gw: RunningGateway, **where: Any) -> list[dict[str, Any]]:
    """Poll until at least one audit row matches `where`; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not (rows := gw.audit_rows(**where)):
        assert time.monotonic() < deadline, f"no audit row with {where}"
        time.sleep(0.05)
    return rows
