"""How the request path reaches the database: one read and one write per request (plus
background writes off the request path, such as usage sums).

On PostgreSQL both go through the async engine (asyncpg). On SQLite, going through
aiosqlite costs ~0.4 ms CPU per read (thread hops per statement), while the same
indexed read on a synchronous connection costs ~0.03 ms (bench/db_access.py). So on
SQLite, reads run on the event loop over one autocommit connection (WAL: they never wait
for the writer), and audit batches are committed by one dedicated thread so that the
fsync never blocks the loop while other requests could use it.

A lone request is the exception: with nothing else in flight, handing its audit batch to
the thread and waking the loop again costs two thread wake-ups (most of a lone request's
audit wait on a busy machine) and spares no one. The audit writer says so (`alone`), and
the transaction then runs on the loop, on a connection of its own that never waits for
the SQLite write lock: if another process holds it, the batch goes to the thread.

The per-request reads (the trust stage's) go through `fetch`: a `PreparedRead` executed
by the driver itself — sqlite3 on the reader's connection, asyncpg (its cached prepared
statement) on a pooled connection — without SQLAlchemy's per-call execution machinery
(gateway/db/prepared.py). A driver error comes out as SQLAlchemy's `OperationalError`,
as it would through Core, so callers keep one failure mapping (fail closed, 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import Connection, Engine, Executable, Row, insert, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from gateway.db.engine import is_sqlite, make_engine, make_sync_sqlite_engine
from gateway.db.models import AuditEvent
from gateway.db.prepared import PreparedRead

_AUDIT = AuditEvent.__table__  # type: ignore[attr-defined]
_PING = text("SELECT 1")
T = TypeVar("T")
# What asyncpg raises when a statement or its connection fails (ConnectionDoesNotExistError
# and AdminShutdownError are PostgresErrors; a broken protocol state is an
# InternalClientError; a socket error may surface as itself).
_ASYNCPG_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


class RequestDb(Protocol):
    async def read(self, query: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]: ...

    async def fetch(self, query: PreparedRead, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """`read` at driver level: the same rows, as tuples; a driver error is raised as
        SQLAlchemy's `OperationalError`. Every call sees the latest commit."""
        ...

    async def insert_audit(self, rows: list[dict[str, Any]]) -> None: ...

    async def transact(self, work: Callable[[Connection], T], *, alone: bool = False) -> T:
        """Run `work` in one write transaction, where audit batches are written (on SQLite,
        the writer thread; on PostgreSQL, `run_sync` over the async connection).

        `alone`: no other request is in flight, so SQLite may commit on the event loop."""
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

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def read(self, query: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        async with self._engine.connect() as conn:
            return (await conn.execute(query, params)).all()

    async def fetch(self, query: PreparedRead, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        compiled = query.compiled(self._engine.dialect)
        args = compiled.args(params)
        # A pooled connection without an `AsyncConnection` around it (two greenlet hops
        # instead of three, and no Connection object: ~50 µs CPU per read here). Nothing
        # is begun on it, so returning it resets nothing and does no I/O.
        pooled = await self._engine.raw_connection()
        driver = pooled.driver_connection
        assert driver is not None  # a checked-out connection is open
        try:
            # asyncpg prepares the text once per connection (its statement cache) and runs
            # it outside any transaction: autocommit, so it sees the latest commit.
            rows = await driver.fetch(compiled.sql, *args)
        except _ASYNCPG_ERRORS as exc:
            # SQLAlchemy did not see the error, so it would pool the connection again:
            # drop it (a dead one is replaced on the next checkout). Failing to close a
            # dead connection must not hide why the read failed.
            with contextlib.suppress(Exception):
                await greenlet_spawn(pooled.invalidate, exc)
            if driver.is_closed():
                # The server went away (a restart): its other pooled connections are as
                # dead as this one. Replace the pool, as SQLAlchemy does on a disconnect,
                # so that each of them does not fail one more request first.
                with contextlib.suppress(Exception):
                    await self._engine.dispose()
            raise _failed(compiled.sql, exc) from exc
        except BaseException:
            # Cancelled (the caller hung up): the connection still goes back, as
            # `AsyncConnection` does on exit; asyncpg finishes the cancelled query first.
            await asyncio.shield(greenlet_spawn(pooled.close))
            raise
        await greenlet_spawn(pooled.close)
        return compiled.rows(rows)

    async def insert_audit(self, rows: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(_AUDIT), rows)

    async def transact(self, work: Callable[[Connection], T], *, alone: bool = False) -> T:
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
        # Held by whoever runs a write transaction of ours, thread or loop: the loop only
        # tries it, so it never waits for the thread.
        self._writing = threading.Lock()
        self._here: Connection | None = None  # the loop's own writing connection, lazily

    async def read(self, query: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        return self._reader.execute(query, params).all()

    async def fetch(self, query: PreparedRead, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        compiled = query.compiled(self._engine.dialect)
        # The reader's own sqlite3 connection, in autocommit (isolation_level None): the
        # SELECT opens no transaction, so it reads the latest commit; sqlite3 keeps the
        # statement prepared in its per-connection cache.
        driver = self._reader.connection.dbapi_connection
        assert driver is not None  # the reader is never closed while the app runs
        try:
            raw = driver.execute(compiled.sql, compiled.args(params)).fetchall()
        except sqlite3.Error as exc:
            raise _failed(compiled.sql, exc) from exc
        return compiled.rows(raw)

    async def insert_audit(self, rows: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._commit, rows)

    def _commit(self, rows: list[dict[str, Any]]) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(_AUDIT), rows)

    async def transact(self, work: Callable[[Connection], T], *, alone: bool = False) -> T:
        if alone and self._writing.acquire(blocking=False):
            try:
                return self._transact_here(work)
            except OperationalError:
                pass  # the write lock is another process's: wait for it in the thread
            finally:
                self._writing.release()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._transact, work)

    def _transact(self, work: Callable[[Connection], T]) -> T:
        with self._writing, self._engine.begin() as conn:
            return work(conn)

    def _transact_here(self, work: Callable[[Connection], T]) -> T:
        if self._here is None:
            self._here = self._engine.connect()
            # Never block the loop on the write lock: SQLITE_BUSY at once instead.
            self._here.exec_driver_sql("PRAGMA busy_timeout=0")
            self._here.commit()
        with self._here.begin():
            return work(self._here)

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
        if self._here is not None:
            self._here.close()
        self._reader.close()
        self._engine.dispose()


def _failed(sql: str, exc: Exception) -> OperationalError:
    # As Core would raise it; parameters hidden (a subject or token id is no log material).
    return OperationalError(sql, None, exc, hide_parameters=True)


async def _answers(db: RequestDb) -> bool:
    try:
        await db.read(_PING, {})
    except Exception:
        return False
    return True


def make_request_db(url: str, *, sqlite_synchronous: str, pool_size: int = 20) -> RequestDb:
    if is_sqlite(url):
        return SqliteRequestDb(make_sync_sqlite_engine(url, sqlite_synchronous=sqlite_synchronous))
    return AsyncRequestDb(make_engine(url, pool_size=pool_size, max_overflow=0))
