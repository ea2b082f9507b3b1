"""Durable audit writes with group commit, and the transparency log in the same transaction.

Every decision waits until its row is committed before its response starts. Concurrent
decisions share one transaction (one fsync), so durability costs a commit per batch
rather than per request. With a log configured, each batch's leaves (the canonical
events) are appended to the transparency log in that same transaction
(`gateway/audit/ledger.py`): a row exists exactly when its leaf does. If the database
refuses the write, every waiter gets the error and its request fails closed.

Outcome leaves (how a response ended) go through the same queue but nobody waits on
them: the response has already been sent. They ride along with the next batch of
decisions rather than costing a commit of their own (one fsync per request more, under
load, measured with bench/run.py); alone, they are written after `OUTCOME_DELAY_S`. A
timer signs a checkpoint when leaves have waited `interval` for one, and closing the
writer signs the last leaves.

Under load the writer waits `COMMIT_DELAY_S` before a commit so that more requests share
it (see `COMMIT_SIBLINGS`).

The pipeline tells the writer how many requests are in flight (`entered`/`left`). When
every one of them is waiting in the batch being committed, nobody else needs the event
loop, and the database may commit on it (`RequestDb.transact(alone=True)`: on SQLite,
no thread hand-off and wake-up back for a lone request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from gateway.audit import ledger
from gateway.audit.rows import insert_rows
from gateway.db.access import RequestDb

log = logging.getLogger(__name__)

# How long outcome leaves may wait for a batch of decisions to join.
OUTCOME_DELAY_S = 0.5
# Group commit under load, as PostgreSQL's commit_delay and commit_siblings: when at least
# COMMIT_SIBLINGS other requests are in flight, the writer waits COMMIT_DELAY_S before
# committing, so that more of them share the commit. Each commit has a fixed cost (~0.5 ms
# of CPU on SQLite: the WAL frames, their checksums and the kernel's share of the fsync);
# at c16 the batches grew from ~6 to ~8 rows and the gateway's CPU per request fell ~5%
# (docs/performance.md). A lone request, or a few, never wait.
COMMIT_SIBLINGS = 4
COMMIT_DELAY_S = 0.002


@dataclass(frozen=True, slots=True)
class _Item:
    row: dict[str, Any] | None
    leaf: ledger.LeafInput | None
    future: asyncio.Future[None] | None  # None: nobody waits (an outcome)


class AuditUnavailable(Exception):
    pass


class AuditWriter:
    def __init__(
        self,
        db: RequestDb,
        *,
        max_batch: int = 256,
        log_policy: ledger.CheckpointPolicy | None = None,
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._policy = log_policy
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        # The log's right edge after our last commit; None: read it from the database.
        self._tip: ledger.Tip | None = None
        self._tick: Callable[[], Awaitable[None]] | None = None
        self._in_flight = 0  # requests between `entered` and `left`

    def entered(self) -> None:
        """A request started: until it `left`, a batch without it is not alone."""
        self._in_flight += 1

    def left(self) -> None:
        self._in_flight -= 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")
        if self._policy is not None:
            self._timer = asyncio.create_task(self._checkpoints(), name="audit-checkpoints")

    async def record(self, row: dict[str, Any], leaf: ledger.LeafInput | None = None) -> None:
        """Return once `row` (and its leaf) is committed; raise AuditUnavailable if not."""
        if self._task is None or self._task.done():
            raise AuditUnavailable("audit writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(row, leaf if self._policy else None, future))
        # A cancelled request cancels this future, not the write: the item is queued, the
        # batch commits it, and `_commit` skips the future as done (and still logs a
        # failure). No `asyncio.shield` needed for that: it cost ~4 µs of loop time per
        # request (an outer future, two callbacks and a wake-up more; bench/audit_path.py).
        await future

    def on_tick(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Also run `hook` on the checkpoint timer (the runtime archives its policy there)."""
        self._tick = hook

    def record_later(self, leaf: ledger.LeafInput) -> None:
        """Queue a leaf nobody waits for (an outcome, after its response was sent)."""
        if self._policy is None:
            return
        if self._task is None or self._task.done():
            log.error("audit writer stopped: outcome %s not logged", leaf.decision_id)
            return
        self._queue.put_nowait(_Item(None, leaf, None))

    async def close(self) -> None:
        if self._task is None:
            return
        # Rows already queued belong to decisions that were made: write them before stopping.
        await self._queue.join()
        for task in (self._timer, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._policy is not None:
            # Sign what the last batches appended, so a clean stop leaves nothing unsigned.
            try:
                await self._db.transact(self._checkpoint_now)
            except Exception:
                log.exception("final audit checkpoint failed")

    async def _run(self) -> None:
        waiting: list[_Item] = []  # outcomes only, waiting for decisions to ride with
        while True:
            if waiting:
                try:
                    first = await asyncio.wait_for(self._queue.get(), OUTCOME_DELAY_S)
                except TimeoutError:
                    await self._flush(waiting)
                    waiting = []
                    continue
            else:
                first = await self._queue.get()
            batch = [first]
            self._drain(batch)
            waiters = sum(item.future is not None for item in batch)
            if waiters and self._in_flight - waiters >= COMMIT_SIBLINGS:
                # Many others in flight: a moment's wait lets some join this commit.
                await asyncio.sleep(COMMIT_DELAY_S)
                self._drain(batch)
            if all(item.future is None for item in batch) and len(waiting) < self._max_batch:
                waiting += batch  # nobody waits on these: no commit of their own yet
                continue
            await self._flush(waiting + batch)
            waiting = []

    def _drain(self, batch: list[_Item]) -> None:
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _flush(self, batch: list[_Item]) -> None:
        await self._commit(batch)
        for _ in batch:
            self._queue.task_done()

    async def _commit(self, batch: list[_Item]) -> None:
        rows = [item.row for item in batch if item.row is not None]
        leaves = [item.leaf for item in batch if item.leaf is not None]
        # Every request in flight waits on this batch: no one else wants the loop.
        alone = self._in_flight <= sum(item.future is not None for item in batch)

        def write(conn: Connection) -> ledger.Tip | None:
            if rows:
                insert_rows(conn, rows)  # driver-level executemany (gateway/audit/rows.py)
            if not leaves:
                return self._tip
            now = datetime.now(UTC)
            return ledger.append(conn, leaves, now=now, policy=self._policy, known=self._tip).tip

        try:
            try:
                tip = await self._db.transact(write, alone=alone)
            except IntegrityError:
                if self._tip is None:
                    raise
                # Another writer on the same SQLite file moved the log past our tip (the
                # batch was rolled back whole): read the tip again and retry once.
                self._tip = None
                tip = await self._db.transact(write)
        except Exception as exc:
            self._tip = None  # rolled back: what we knew of the edge may be wrong now
            log.exception("audit write of %d rows, %d leaves failed", len(rows), len(leaves))
            for item in batch:
                if item.future is not None and not item.future.done():
                    item.future.set_exception(AuditUnavailable(str(exc)))
            return
        self._tip = tip
        for item in batch:
            if item.future is not None and not item.future.done():
                item.future.set_result(None)

    async def _checkpoints(self) -> None:
        assert self._policy is not None
        while True:
            await asyncio.sleep(self._policy.interval.total_seconds())
            try:
                await self._db.transact(self._checkpoint_if_due)
            except Exception:
                # Not fatal to requests: the next tick or append signs what waits.
                log.exception("audit checkpoint failed")
            if self._tick is not None:
                await self._tick()

    def _checkpoint_if_due(self, conn: Connection) -> None:
        assert self._policy is not None
        ledger.checkpoint_if_due(conn, now=datetime.now(UTC), policy=self._policy)

    def _checkpoint_now(self, conn: Connection) -> None:
        assert self._policy is not None
        ledger.checkpoint_if_due(conn, now=datetime.now(UTC), policy=self._policy, force=True)
