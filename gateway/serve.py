"""How the gateway is served in production, by the demo and by the benchmark alike."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.types import ASGIApp

from gateway.settings import Settings


def _options(settings: Settings | None) -> dict[str, Any]:
    # uvloop + httptools: the fastest pair uvicorn offers. No access log: every request is
    # already an audit row and a metric. Forwarded headers are not trusted by default.
    # Header count and size and the body's deadline are checked by gateway/api/hardening.py
    # (httptools has no header limit of its own); uvicorn closes idle keep-alive connections
    # and, when set, caps concurrent connections (503 beyond).
    limits = settings or Settings.model_construct(keep_alive_timeout_s=5.0, max_connections=0)
    return {
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": False,
        "server_header": False,  # nothing to learn about the stack from a banner
        "timeout_keep_alive": int(limits.keep_alive_timeout_s),
        "limit_concurrency": limits.max_connections or None,
    }


def run_server(app: ASGIApp, *, host: str, port: int, settings: Settings | None = None) -> None:
    uvicorn.run(app, host=host, port=port, **_options(settings))


def run_workers(*, host: str, port: int, workers: int, settings: Settings | None = None) -> None:
    """`workers` processes on one socket, each building its app from the environment
    (`TACGW_*` and `TACGW_CONFIG_FILE`): uvicorn's supervisor spawns them and restarts
    one that dies. Each has its own event loop, pools and caches; limits and the audit
    log are shared through the database and the limits storage."""
    uvicorn.run(
        "gateway.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **_options(settings),
    )
