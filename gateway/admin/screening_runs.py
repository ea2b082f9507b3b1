"""Screening runs started through the admin API: each one an asyncio task owned by the
admin service, with its progress kept in memory.

A run's state lives in the replica that started it (ask that one; the report itself goes
to the database like any other), and is lost on restart; shutdown cancels the runs still
going, which then store nothing. One run per model at a time on a replica.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.screening import screen_and_record, upstream_endpoint
from gateway.policy.bundle import load_bundle
from gateway.screening.report import ScreeningPolicy
from gateway.settings import Settings

log = logging.getLogger(__name__)

RunState = Literal["running", "done", "failed", "cancelled"]
# Finished runs kept for their status; the oldest are forgotten first (reports stay stored).
KEEP_FINISHED = 200


class RunInProgress(Exception):
    """A run of this model is still going on this replica."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


@dataclass
class ScreeningRun:
    id: str
    model: str
    ran_by: str
    started_at: datetime
    state: RunState = "running"
    done: int = 0
    total: int = 0  # 0 until the first sample is counted
    report_id: str | None = None
    error: str | None = None  # the failure's kind, never its message (it may name hosts)
    finished_at: datetime | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ScreeningRuns:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._runs: OrderedDict[str, ScreeningRun] = OrderedDict()

    def get(self, run_id: str) -> ScreeningRun | None:
        return self._runs.get(run_id)

    async def start(
        self, *, model_name: str, ran_by: str, samples: int | None = None
    ) -> ScreeningRun:
        """Start screening `model_name` in the background; raises UnknownModel,
        Unscreenable (gateway/admin/screening.py) or RunInProgress before anything runs."""
        for run in self._runs.values():
            if run.model == model_name and run.state == "running":
                raise RunInProgress(run.id)
        endpoint = await upstream_endpoint(
            self._engine, settings=self._settings, model_name=model_name
        )
        # The thresholds the gateway decides with now (a reload re-reads the same files).
        policy = ScreeningPolicy.from_policy_data(load_bundle(self._settings.policy_dir).data)
        run = ScreeningRun(
            id=uuid.uuid4().hex, model=model_name, ran_by=ran_by, started_at=datetime.now(UTC)
        )

        def progress(done: int, total: int) -> None:
            run.done, run.total = done, total

        async def work() -> None:
            try:
                _, saved = await screen_and_record(
                    self._engine,
                    settings=self._settings,
                    policy=policy,
                    model_name=model_name,
                    ran_by=ran_by,
                    samples=samples,
                    progress=progress,
                    endpoint=endpoint,
                )
            except asyncio.CancelledError:
                self._finish(run, "cancelled")
                raise
            except Exception as exc:  # a background task: nobody else would see it
                log.error("screening run %s of %s failed: %s", run.id, model_name, exc)
                self._finish(run, "failed", error=type(exc).__name__)
            else:
                run.report_id = saved.id
                self._finish(run, "done")

        self._runs[run.id] = run
        run.task = asyncio.create_task(work(), name=f"screening-{run.id}")
        self._forget_old()
        return run

    async def close(self) -> None:
        """Cancel the runs still going and wait for them to stop."""
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in self._runs.values():
            if run.state == "running":  # cancelled before its first step ran
                self._finish(run, "cancelled")

    @staticmethod
    def _finish(run: ScreeningRun, state: RunState, *, error: str | None = None) -> None:
        run.state, run.error, run.finished_at = state, error, datetime.now(UTC)

    def _forget_old(self) -> None:
        finished = [k for k, r in self._runs.items() if r.state != "running"]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._runs[key]
