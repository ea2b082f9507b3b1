"""One screening, end to end: run the samples, classify each, grade if asked, report.

The deterministic rubric decides first. With a grader, a valid sample is also graded: a
reply out of the strict format (or a failed grader call) makes the sample invalid, and a
HARMFUL grade marks it harmful even where the rubric saw nothing — a gate errs towards
refusing. Disagreements stay visible per sample (`rubric` and `grader` fields).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gateway.screening import classify as rubric
from gateway.screening.grader import ERROR, HARMFUL, OUT_OF_FORMAT, Grade, grade
from gateway.screening.report import REPLY_CHARS, Outcome, Report, ScreeningPolicy, build_report
from gateway.screening.runner import (
    Endpoint,
    Progress,
    RunConfig,
    Sample,
    public_url,
    run_samples,
)
from gateway.screening.scenarios import Pack, Rendering, load_pack


async def screen(
    *,
    model: str,
    endpoint: Endpoint,
    config: RunConfig,
    policy: ScreeningPolicy,
    ran_by: str,
    ttl: timedelta,
    grader: Endpoint | None = None,
    pack: Pack | None = None,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Screen `model` (a catalog name) through its upstream `endpoint`; nothing is stored."""
    pack = pack or load_pack()
    started = clock()
    steps = 2 if grader is not None else 1

    def ran(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total * steps)

    samples = await run_samples(endpoint=endpoint, config=config, pack=pack, progress=ran)
    renderings = {(r.condition, r.key): r for c in pack.conditions for r in c.renderings}
    kinds = {c.name: c.kind for c in pack.conditions}
    verdicts = [
        rubric.classify(
            s, kind=kinds[s.condition], facts=renderings[s.condition, s.rendering].facts
        )
        for s in samples
    ]
    grades: list[Grade | None] = [None] * len(samples)
    if grader is not None:
        grades = await _grade_all(grader, config, samples, verdicts, renderings, kinds, progress)
    outcomes = [_outcome(s, v, g) for s, v, g in zip(samples, verdicts, grades, strict=True)]
    finished = clock()
    header = {
        "model": model,
        "upstream": {"url": public_url(endpoint.base_url), "model": endpoint.model},
        "ran_by": ran_by,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "pack": {"version": pack.version, "sha256": pack.sha256},
        "config": config.public(),
        "grader": None
        if grader is None
        else {"url": public_url(grader.base_url), "model": grader.model},
    }
    chosen = [c for c in pack.conditions if not config.conditions or c.name in config.conditions]
    return build_report(
        header=header,
        conditions=[(c.name, c.kind, c.control) for c in chosen],
        outcomes=outcomes,
        policy=policy,
        expires_at=finished + ttl,
    )


async def _grade_all(
    grader: Endpoint,
    config: RunConfig,
    samples: list[Sample],
    verdicts: list[rubric.Verdict],
    renderings: dict[tuple[str, str], Rendering],
    kinds: dict[str, str],
    progress: Progress | None,
) -> list[Grade | None]:
    gate = asyncio.Semaphore(config.concurrency)
    total = 2 * len(samples)
    done = len(samples)

    async def one(http: httpx.AsyncClient, s: Sample, v: rubric.Verdict) -> Grade | None:
        nonlocal done
        result = None
        if v.valid:  # an invalid sample stays invalid: there is nothing to grade
            async with gate:
                result = await grade(
                    http,
                    grader,
                    rendering=renderings[s.condition, s.rendering],
                    kind=kinds[s.condition],
                    actions=v.actions,
                    retries=config.retries,
                    backoff_s=config.backoff_s,
                )
        done += 1
        if progress is not None:
            progress(done, total)
        return result

    limits = httpx.Limits(max_connections=config.concurrency)
    async with httpx.AsyncClient(timeout=config.timeout_s, limits=limits) as http:
        return list(
            await asyncio.gather(*(one(http, s, v) for s, v in zip(samples, verdicts, strict=True)))
        )


def _outcome(sample: Sample, verdict: rubric.Verdict, graded: Grade | None) -> Outcome:
    final = verdict
    if graded is not None and verdict.valid:
        if graded.verdict in (OUT_OF_FORMAT, ERROR):
            reason = (
                rubric.GRADER_OUT_OF_FORMAT
                if graded.verdict == OUT_OF_FORMAT
                else rubric.GRADER_ERROR
            )
            final = rubric.Verdict.invalid(reason, verdict.actions)
        elif graded.verdict == HARMFUL:
            final = replace(verdict, harmful=True)
    record: dict[str, Any] = {
        "condition": sample.condition,
        "rendering": sample.rendering,
        "index": sample.index,
        "request_hash": sample.request_hash,
        "finish_reason": sample.finish_reason,
        "usage": sample.usage,
        "latency_ms": sample.latency_ms,
        "error": sample.error,
        "valid": final.valid,
        "harmful": final.harmful,
        "invalid_reason": final.invalid_reason,
        "rubric": {
            "valid": verdict.valid,
            "harmful": verdict.harmful,
            "findings": list(verdict.findings),
        },
        "grader": None if graded is None else {"verdict": graded.verdict, "raw": graded.raw[:200]},
        "actions": [a.public() for a in verdict.actions],
        "turns": [
            _turn_record(t.message, t.finish_reason, t.request_hash, t.attempts)
            for t in sample.turns
        ],
    }
    return Outcome(sample.condition, final.valid, final.harmful, final.invalid_reason, record)


def _turn_record(
    message: dict[str, Any], finish: str | None, digest: str, attempts: int
) -> dict[str, Any]:
    content = message.get("content")
    calls = [
        {
            "name": str((c.get("function") or {}).get("name", ""))[:100],
            "arguments": str((c.get("function") or {}).get("arguments", ""))[:REPLY_CHARS],
        }
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    return {
        "request_hash": digest,
        "attempts": attempts,
        "finish_reason": finish,
        "content": content[:REPLY_CHARS] if isinstance(content, str) else None,
        "tool_calls": calls,
    }
