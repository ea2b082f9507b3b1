"""Apply Alembic migrations programmatically (`tac-gateway migrate`, tests, the demo)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", database_url)
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    _outside_event_loop(command.upgrade, alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the tables in `gateway.db.models` differ from what the migrations create."""
    _outside_event_loop(command.check, alembic_config(database_url))


def _outside_event_loop(fn: Callable[..., Any], *args: Any) -> Any:
    # The Alembic environment runs its own event loop (env.py); from inside a running loop
    # (an async caller) it must run on another thread. Migrations are not on a hot path.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()
