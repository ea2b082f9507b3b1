"""`gateway.cli.serve`: the start line and the port check, without starting a server."""

from __future__ import annotations

import socket

import pytest

from gateway.cli.output import CliError
from gateway.cli.serve import require_free_port, startup_line
from gateway.settings import Settings


def test_startup_line_names_kinds_never_credentials() -> None:
    """PostgreSQL, OPA and Redis URLs with passwords: the line shows their kinds only."""
    settings = Settings(
        database_url="postgresql://tacgw:db-pass@db.internal:5432/tacgw",
        policy_engine="opa",
        rate_limit_storage="redis://:redis-pass@cache.internal:6379/0",
    )
    line = startup_line(settings, host="0.0.0.0", port=8080)
    assert line == (
        "tac-gateway serving http://0.0.0.0:8080 (database: postgresql, policy: opa, limits: redis)"
    )
    assert "pass" not in line and "internal" not in line


def test_startup_line_brackets_ipv6_hosts() -> None:
    """An IPv6 listen address is bracketed so the URL can be pasted."""
    line = startup_line(Settings(database_url="sqlite:///x.db"), host="::1", port=9000)
    assert line.startswith("tac-gateway serving http://[::1]:9000 (database: sqlite")


def test_busy_port_is_named() -> None:
    """A port something already listens on fails with one line naming it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(CliError, match=f"cannot listen on 127.0.0.1 port {port}: "):
            require_free_port("127.0.0.1", port)
    require_free_port("127.0.0.1", port)  # closed again: free
