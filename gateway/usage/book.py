"""Usage per organization, model and UTC day: summed in memory, added to the database.

Each replica adds its sums every `flush_s` seconds with one upsert per row (`requests =
requests + excluded.requests`, the same SQL on SQLite and PostgreSQL), so replicas never
overwrite each other and no request waits for this write. A failed flush keeps its sums
for the next one; a crash loses at most one interval of these sums (the audit log, not
this table, is the record of each call). Prometheus counters are updated at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, bindparam, text

from gateway.db.access import RequestDb
from gateway.metrics import Metrics
from gateway.usage.figures import Usage

log = logging.getLogger(__name__)

_UPSERT = text(
    """
    INSERT INTO usagedaily
        (org_id, model, day, requests, prompt_tokens, completion_tokens, estimated_requests)
    VALUES
        (:org_id, :model, :day, :requests, :prompt_tokens, :completion_tokens,
         :estimated_requests)
    ON CONFLICT (org_id, model, day) DO UPDATE SET
        requests = usagedaily.requests + excluded.requests,
        prompt_tokens = usagedaily.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = usagedaily.completion_tokens + excluded.completion_tokens,
        estimated_requests = usagedaily.estimated_requests + excluded.estimated_requests
    """
).bindparams(bindparam("day", type_=Date))

_Key = tuple[str, str, date]


class UsageBook:
    def __init__(self, db: RequestDb, *, flush_s: float, metrics: Metrics) -> None:
        self._db = db
        self._flush_s = flush_s
        self._metrics = metrics
        self._sums: dict[_Key, list[int]] = {}
        self._task: asyncio.Task[None] | None = None
        # The (prompt, completion) counters of each label set: `labels()` costs ~2 µs a call.
        self._counters: dict[tuple[str, str, bool], tuple[Any, Any]] = {}

    def record(self, *, org_id: str, model: str, tier: str, usage: Usage) -> None:
        """Count one call's usage (cheap, synchronous: the write happens later)."""
        counters = self._counters.get((tier, model, usage.estimated))
        if counters is None:
            source = "estimated" if usage.estimated else "upstream"
            tokens = self._metrics.tokens
            counters = self._counters[(tier, model, usage.estimated)] = (
                tokens.labels(tier, model, "prompt", source),
                tokens.labels(tier, model, "completion", source),
            )
        counters[0].inc(usage.prompt)
        counters[1].inc(usage.completion)
        key = (org_id, model, datetime.now(UTC).date())
        sums = self._sums.get(key)
        if sums is None:
            sums = self._sums[key] = [0, 0, 0, 0]
        sums[0] += 1
        sums[1] += usage.prompt
        sums[2] += usage.completion
        sums[3] += usage.estimated

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-book")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        """Add the sums so far to the database; on failure, keep them for the next flush."""
        sums, self._sums = self._sums, {}
        if not sums:
            return
        rows: list[dict[str, Any]] = [
            {
                "org_id": org_id,
                "model": model,
                "day": day,
                "requests": s[0],
                "prompt_tokens": s[1],
                "completion_tokens": s[2],
                "estimated_requests": s[3],
            }
            for (org_id, model, day), s in sums.items()
        ]
        try:
            await self._db.write(_UPSERT, rows)
        except Exception as exc:
            self._metrics.usage_write_failures.inc()
            log.error("writing usage sums failed (%s); kept for the next flush", type(exc).__name__)
            for key, s in sums.items():
                mine = self._sums.setdefault(key, [0, 0, 0, 0])
                for i, value in enumerate(s):
                    mine[i] += value

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()
