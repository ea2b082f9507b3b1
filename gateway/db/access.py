"""How the request path reaches the database: one read and one write per request (plus
background writes off the request path, such as usage sums).

On PostgreSQL both go through the async engine (asyncpg). On SQLite, going through
aiosqlite costs ~0.4 ms CPU per read (thread hops per statement), while the same
indexed read on a synchronous connection costs ~0.03 ms (bench/db_access.py). So on
SQLite, reads run on the event loop over one autocommit connection (WAL: they never wait
for the writer), and audit batches are committed by one dedicated thread so that the
fsync never blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.engine import is_sqlite, make_engine, make_sync_sqlite_engine
from gateway.db.models import AuditEvent

_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_PING = text("SELECT 1")
T = TypeVar("T")


class RequestDb(Protocol):
    async def read(self, query: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]: ...

    async def insert_audit(self, rows: list[dict[str, Any]]) -> None: ...

    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, where audit batches are written (on SQLite,
        the writer thread; on PostgreSQL, `run_sync` over the async connection)."""
        ...

    async def write(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        """Run `statement` for each row in one transaction (background writes: usage)."""
        ...

    async def ping(self) -> bool:
        """True if the database answers a trivial query through the request path's access."""
        ...

    async def close(self) -> None: ...


class AsyncRequestDb:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self, query: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        async with self._engine.connect() as conn:
            return (await conn.execute(query, params)).all()

    async def insert_audit(self, rows: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(_AUDIT), rows)

    async def transact(self, work: Callable[[Connection], T]) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(work)

    async def write(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(statement, rows)

    async def ping(self) -> bool:
        return await _answers(self)

    async def close(self) -> None:
        await self._engine.dispose()


class SqliteRequestDb:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._reader: Connection = engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"  # no long-lived read snapshot: see every change
        )
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")

    async def read(self, query: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        return self._reader.execute(query, params).all()

    async def insert_audit(self, rows: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._commit, rows)

    def _commit(self, rows: list[dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(_AUDIT), rows)

    async def transact(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._transact, work)

    def _transact(self, work: Callable[[Connection], T]) -> T:
        with self._engine.begin() as conn:
            return work(conn)

    async def write(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        # The audit writer's thread: SQLite has one writer, so writes queue behind audits.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._execute, statement, rows)

    def _execute(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            conn.execute(statement, rows)

    async def ping(self) -> bool:
        return await _answers(self)

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._reader.close()
        self._engine.dispose()


async def _answers(db: RequestDb) -> bool:
    try:
        await db.read(_PING, {})
    except Exception:
        return False
    return True


def make_request_db(url: str, *, sqlite_synchronous: str) -> RequestDb:
    if is_sqlite(url):
        return SqliteRequestDb(make_sync_sqlite_engine(url, sqlite_synchronous=sqlite_synchronous))
    return AsyncRequestDb(make_engine(url))
