"""The audit writer: a request cancelled while its decision commits still has it logged;
under load, decisions a moment apart share a commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy import Connection, text

from gateway.audit import ledger
from gateway.audit import writer as writer_module
from gateway.audit.record import AuditDraft
from gateway.audit.writer import AuditWriter
from gateway.db.access import RequestDb, make_request_db
from gateway.db.migrate import upgrade
from gateway.metrics import Metrics
from gateway.reasons import Reason

T = TypeVar("T")


async def test_a_cancelled_commit_still_writes_its_row_and_leaf(
    tmp_path: Path, policy: ledger.CheckpointPolicy
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    store = make_request_db(url, sqlite_synchronous="FULL")
    writer = AuditWriter(store, log_policy=policy)
    writer.start()
    writer.entered()  # another request in flight: the batch goes to the writer thread
    try:
        drafts = [
            AuditDraft(endpoint="chat.completions", writer=writer, metrics=Metrics())
            for _ in range(3)
        ]
        tasks = [
            asyncio.create_task(d.commit(allow=True, status=200, reasons=(Reason.ALLOWED,)))
            for d in drafts
        ]
        await asyncio.sleep(0)  # every commit has queued its row
        tasks[1].cancel()  # the caller went away while its decision was being committed
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], asyncio.CancelledError)
        # The next decision commits after that batch: the cancelled one is durable too.
        later = AuditDraft(endpoint="chat.completions", writer=writer, metrics=Metrics())
        await later.commit(allow=False, status=401, reasons=(Reason.TOKEN_MISSING,))
        ids = [d.decision_id for d in drafts] + [later.decision_id]
        rows = await store.read(text("SELECT id, status FROM auditevent"), {})
        assert sorted(rows) == sorted(zip(ids, [200, 200, 200, 401], strict=True))
        leaves = await store.read(text("SELECT decision_id FROM tlog_leaf ORDER BY leaf_index"), {})
        assert sorted(r[0] for r in leaves) == sorted(ids)
    finally:
        writer.left()
        await writer.close()
        await store.close()


class _CountingDb:
    """The real request database, counting the transactions the writer opens."""

    def __init__(self, real: RequestDb) -> None:
        self.real = real
        self.transactions = 0

    async def transact(self, work: Callable[[Connection], T], *, alone: bool = False) -> T:
        self.transactions += 1
        return await self.real.transact(work, alone=alone)


async def _two_decisions_apart(
    tmp_path: Path, policy: ledger.CheckpointPolicy, *, others_in_flight: int
) -> int:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    store = make_request_db(url, sqlite_synchronous="FULL")
    counting = _CountingDb(store)
    writer = AuditWriter(cast(RequestDb, counting), log_policy=policy)
    writer.start()
    for _ in range(others_in_flight + 2):
        writer.entered()
    try:

        async def decide(after_s: float) -> str:
            await asyncio.sleep(after_s)
            draft = AuditDraft(endpoint="chat.completions", writer=writer, metrics=Metrics())
            await draft.commit(allow=True, status=200, reasons=(Reason.ALLOWED,))
            return draft.decision_id

        ids = await asyncio.gather(decide(0), decide(writer_module.COMMIT_DELAY_S / 4))
        rows = await store.read(text("SELECT id FROM auditevent"), {})
        assert sorted(r[0] for r in rows) == sorted(ids)
        return counting.transactions
    finally:
        for _ in range(others_in_flight + 2):
            writer.left()
        await writer.close()
        await store.close()


async def test_under_load_decisions_made_a_moment_apart_share_one_commit(
    tmp_path: Path, policy: ledger.CheckpointPolicy
) -> None:
    assert await _two_decisions_apart(tmp_path, policy, others_in_flight=5) == 1


async def test_with_few_in_flight_a_decision_commits_at_once(
    tmp_path: Path, policy: ledger.CheckpointPolicy
) -> None:
    assert writer_module.COMMIT_SIBLINGS > 1
    assert await _two_decisions_apart(tmp_path, policy, others_in_flight=0) == 2
