"""Database engines: the async engine every app has, and on SQLite a synchronous one.

SQLite runs in WAL mode (readers never wait for the audit writer) with a configurable
`synchronous` level; FULL makes each audit commit durable before the response starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10, max_overflow: int = 10
) -> AsyncEngine:
    if not is_sqlite(url):
        # No pre-ping: it is one more round trip on every request. A connection that died
        # fails its request with 503 (fail closed) and is replaced; recycling bounds its age.
        # (The request path's pool: `Settings.database_pool_size`, no overflow.)
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=300
        )
    _ensure_parent(url)
    engine = create_async_engine(url)
    _install_pragmas(engine.sync_engine, sqlite_synchronous)
    return engine


def make_sync_sqlite_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """The same SQLite file through the stdlib driver, for the request path (see access.py)."""
    parsed = make_url(url).set(drivername="sqlite+pysqlite")
    _ensure_parent(url)
    # Connections move between the event loop and the audit thread; each is used by one at
    # a time, which is what sqlite3's same-thread check is meant to guarantee.
    engine = create_engine(parsed, connect_args={"check_same_thread": False})
    _install_pragmas(engine, sqlite_synchronous)
    return engine


def _ensure_parent(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _install_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()
