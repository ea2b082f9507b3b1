"""Durable audit writes with group commit.

Every decision waits until its row is committed before its response starts. Concurrent
decisions share one transaction (one fsync), so durability costs a commit per batch
rather than per request. If the database refuses the write, every waiter gets the error
and its request fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway.db.access import RequestDb

log = logging.getLogger(__name__)

_Item = tuple[dict[str, Any], asyncio.Future[None]]


class AuditUnavailable(Exception):
    pass


class AuditWriter:
    def __init__(self, db: RequestDb, *, max_batch: int = 256) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def record(self, row: dict[str, Any]) -> None:
        """Return once `row` is committed; raise AuditUnavailable if it could not be."""
        if self._task is None or self._task.done():
            raise AuditUnavailable("audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((row, future))
        # Shielded: a cancelled request still has its row written, and we learn the outcome.
        await asyncio.shield(future)

    async def close(self) -> None:
        if self._task is None:
            return
        # Rows already queued belong to decisions that were made: write them before stopping.
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)
            for _ in batch:
                self._queue.task_done()

    async def _commit(self, batch: list[_Item]) -> None:
        try:
            await self._db.insert_audit([row for row, _ in batch])
        except Exception as exc:
            log.exception("audit write of %d rows failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(AuditUnavailable(str(exc)))
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)
