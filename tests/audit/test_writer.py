"""The audit writer: a request cancelled while its decision commits still has it logged."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from gateway.audit import ledger
from gateway.audit.record import AuditDraft
from gateway.audit.writer import AuditWriter
from gateway.db.access import make_request_db
from gateway.db.migrate import upgrade
from gateway.metrics import Metrics
from gateway.reasons import Reason


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
