"""The auditor's API, `/audit/...`: read-only; the admin policy allows `audit.read`.

Query decisions with filters and cursor pages, read one by its full id, export (the
verifiable JSONL log, or CSV rows), verify, get inclusion and consistency proofs and the
latest checkpoint, count per bucket, and replay a decision. The data functions live in
`gateway/audit/`; this module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy import Connection
from starlette.responses import Response, StreamingResponse

from gateway.api.admin_deps import Permit
from gateway.api.admin_schema import refusals
from gateway.api.deps import RuntimeDep
from gateway.audit import ledger, query, replay
from gateway.audit.export import FORMAT as LOG_EXPORT_FORMAT
from gateway.audit.proofs import ConsistencyProof, InclusionProof
from gateway.audit.tlog import ProofError, frontier
from gateway.audit.verify import verify_log
from gateway.db.engine import make_engine
from gateway.errors import BadRequest, NotFound
from gateway.reasons import Reason
from gateway.runtime import Runtime

T = TypeVar("T")


# Who may read is the admin policy's call (policies/admin.rego: admins and auditors), as
# for every /admin route; a refusal is itself an audit event.
router = APIRouter(
    prefix="/audit", tags=["audit"], dependencies=[Permit("audit.read")], responses=refusals()
)


class Page(BaseModel):
    decisions: list[dict[str, Any]]
    next_cursor: str | None


class Checkpoint(BaseModel):
    origin: str
    size: int
    root: str  # base64
    note: str  # the signed note, C2SP tlog-checkpoint
    vkey: str  # the log's verifier key


class Inclusion(BaseModel):
    decision_id: str
    kind: str
    index: int
    size: int
    path: list[str]
    leaf: str  # base64 of the event's canonical bytes
    checkpoint: str
    tlog_proof: str  # the same, as a C2SP tlog-proof file


class Consistency(BaseModel):
    old_size: int
    new_size: int
    path: list[str]
    text: str


class Verification(BaseModel):
    ok: bool
    leaves_checked: int
    checkpoints_checked: int
    size: int
    problem: str | None
    first_broken_leaf: int | None
    checkpoint: int | None


class Explanation(BaseModel):
    decision_id: str
    policy_version: str
    reproduced: bool
    recorded: dict[str, Any]
    replayed: dict[str, Any]
    input: dict[str, Any]


# Leaf indexes and log sizes are BIGINT columns: a larger number is a 422, not a 500.
MAX_INDEX = 2**63 - 1
Index = Annotated[int, Query(ge=0, le=MAX_INDEX)]
Size = Annotated[int, Query(ge=1, le=MAX_INDEX)]
# What a reason filter may be: a snake_case reason code (gateway/reasons.py).
ReasonCode = Annotated[str, Query(pattern=query.REASON_CODE.pattern, max_length=64)]
# An endpoint's exact name (`admin.org.approve`) or a prefix ending in "." (`oauth.`).
EndpointName = Annotated[str, Query(pattern=r"^[a-z0-9_.]+$", max_length=64)]


def filters(
    since: datetime | None = None,
    until: datetime | None = None,
    org: str | None = None,
    subject: str | None = None,
    model: str | None = None,
    tier: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
    reason: ReasonCode | None = None,
    endpoint: EndpointName | None = None,
) -> query.Filters:
    return query.Filters(since, until, org, subject, model, tier, decision, reason, endpoint)


FiltersDep = Annotated[query.Filters, Depends(filters)]


@router.get("/decisions", response_model=Page, summary="Decisions matching the filters")
async def decisions(
    rt: RuntimeDep,
    f: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=query.MAX_PAGE)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    page, next_cursor = await _read(
        rt, lambda c: query.decisions(c, filters=f, limit=limit, cursor=cursor)
    )
    return {"decisions": page, "next_cursor": next_cursor}


@router.get("/decisions/{decision_id}", summary="One decision by its full id")
async def one_decision(rt: RuntimeDep, decision_id: str) -> dict[str, Any]:
    found = await _read(rt, lambda c: query.decision(c, decision_id=decision_id))
    if found is None:
        raise NotFound(Reason.DECISION_NOT_FOUND, f"No decision {decision_id[:64]}.")
    return found


@router.get("/counts", summary="Decisions per time bucket and decision, reason, tier or org")
async def counts(
    rt: RuntimeDep,
    f: FiltersDep,
    by: Literal["decision", "reason", "tier", "org_id"] = "decision",
    bucket: Literal["minute", "hour", "day"] = "hour",
) -> list[dict[str, Any]]:
    return await _read(rt, lambda c: query.counts(c, filters=f, by=by, bucket=bucket))


@router.get(
    "/export",
    summary="JSONL: the verifiable log (leaves and checkpoints); CSV: rows",
    response_class=Response,
    responses={
        200: {
            "description": "The log as JSONL, or the rows as CSV (`format`)",
            "content": {
                "application/jsonl": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export(
    rt: RuntimeDep,
    f: FiltersDep,
    format: Literal["jsonl", "csv"] = "jsonl",
    start: Index | None = None,
    end: Index | None = None,
) -> Response:
    if format == "csv":
        return StreamingResponse(_csv(rt, f), media_type="text/csv; charset=utf-8")
    # Checked before the first byte goes out: a bad range is a 400, not a cut stream.
    head = await _read(rt, lambda c: _export_head(c, start, end))
    return StreamingResponse(_jsonl(rt, head), media_type="application/jsonl")


@router.get("/verify", response_model=Verification, summary="Verify a range, or everything")
async def verify(
    rt: RuntimeDep,
    start: Index | None = None,
    end: Index | None = None,
) -> dict[str, Any]:
    verifier = rt.audit_log
    # Replaying every leaf is CPU work: in a thread, with its own engine, off the loop.
    report = await asyncio.to_thread(
        _in_own_loop, rt, lambda c: verify_log(c, verifier=verifier, start=start, end=end)
    )
    p = report.problem
    return {
        "ok": report.ok,
        "leaves_checked": report.leaves,
        "checkpoints_checked": report.checkpoints,
        "size": report.size,
        "problem": p.message if p else None,
        "first_broken_leaf": p.leaf_index if p else None,
        "checkpoint": p.checkpoint_size if p else None,
    }


@router.get("/checkpoint", response_model=Checkpoint, summary="The latest signed checkpoint")
async def checkpoint(rt: RuntimeDep) -> dict[str, Any]:
    latest = await _read(rt, ledger.latest_checkpoint)
    if latest is None:
        raise NotFound(Reason.NOT_IN_CHECKPOINT, "No checkpoint has been signed yet.")
    return _checkpoint(rt, latest)


@router.get("/checkpoints", summary="Signed checkpoints, newest first")
async def checkpoints(
    rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=query.MAX_PAGE)] = 100
) -> list[dict[str, Any]]:
    found = await _read(rt, ledger.checkpoints)
    return [_checkpoint(rt, cp) for cp in reversed(found[-limit:])]


@router.get("/checkpoints/{size}", response_model=Checkpoint, summary="The checkpoint of a size")
async def checkpoint_of_size(
    rt: RuntimeDep, size: Annotated[int, Path(ge=0, le=MAX_INDEX)]
) -> dict[str, Any]:
    found = await _read(rt, lambda c: ledger.checkpoint_of_size(c, size))
    if found is None:
        raise NotFound(Reason.NOT_IN_CHECKPOINT, f"No checkpoint of size {size}.")
    return _checkpoint(rt, found)


@router.get(
    "/proofs/inclusion/{decision_id}",
    response_model=Inclusion,
    summary="Inclusion proof of a decision's leaf in a checkpoint (default: the latest)",
)
async def inclusion(
    rt: RuntimeDep,
    decision_id: str,
    kind: Literal["decision", "outcome"] = "decision",
    size: Size | None = None,
) -> dict[str, Any]:
    def work(c: Connection) -> dict[str, Any]:
        leaf = ledger.leaf_of(c, decision_id=decision_id, kind=kind)
        if leaf is None:
            raise NotFound(Reason.DECISION_NOT_FOUND, f"No {kind} leaf for {decision_id[:64]}.")
        cp = ledger.latest_checkpoint(c) if size is None else ledger.checkpoint_of_size(c, size)
        if cp is None or cp.size <= leaf.index:
            raise NotFound(
                Reason.NOT_IN_CHECKPOINT,
                f"Leaf {leaf.index} is not in that checkpoint; retry after the next one.",
            )
        path = ledger.prove_inclusion(c, index=leaf.index, size=cp.size)
        return {
            "decision_id": decision_id,
            "kind": kind,
            "index": leaf.index,
            "size": cp.size,
            "path": [_b64(h) for h in path],
            "leaf": _b64(leaf.event),
            "checkpoint": cp.note,
            "tlog_proof": InclusionProof(leaf.index, path, cp.note).text(),
        }

    return await _read(rt, work)


@router.get(
    "/proofs/consistency",
    response_model=Consistency,
    summary="Consistency proof between two checkpoint sizes",
)
async def consistency(rt: RuntimeDep, old: Size, new: Size) -> dict[str, Any]:
    def work(c: Connection) -> dict[str, Any]:
        if old > new or new > ledger.size(c):
            raise BadRequest(Reason.INVALID_REQUEST, "Need 1 <= old <= new <= the log's size.")
        path = ledger.prove_consistency(c, old_size=old, new_size=new)
        text = ConsistencyProof(old, new, path).text()
        return {"old_size": old, "new_size": new, "path": [_b64(h) for h in path], "text": text}

    return await _read(rt, work)


@router.get(
    "/decisions/{decision_id}/explain",
    response_model=Explanation,
    summary="Replay the decision with the archived policy that made it",
)
async def explain(rt: RuntimeDep, decision_id: str) -> dict[str, Any]:
    try:
        bundle, event = await _read(rt, lambda c: replay.load_decision(c, decision_id))
        result = await replay.explain(bundle, event)
    except replay.ReplayError as exc:
        raise NotFound(Reason.NOT_REPLAYABLE, str(exc)) from exc
    return {
        "decision_id": decision_id,
        "policy_version": result.recorded.policy_version,
        "reproduced": result.reproduced,
        "recorded": _decided(result.recorded),
        "replayed": _decided(result.replayed),
        "input": result.policy_input,
    }


# ---------------------------------------------------------------------------- helpers


async def _read(rt: Runtime, work: Callable[[Connection], T]) -> T:
    try:
        async with rt.audit_reader.connect() as conn:
            return await conn.run_sync(work)
    except query.BadQuery as exc:
        raise BadRequest(Reason.INVALID_REQUEST, str(exc)) from exc
    except ProofError as exc:
        raise BadRequest(Reason.INVALID_REQUEST, str(exc)) from exc


def _in_own_loop(rt: Runtime, work: Callable[[Connection], T]) -> T:
    async def go() -> T:
        engine = make_engine(rt.audit_reader.url.render_as_string(hide_password=False))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


_Head = tuple[int, int, list[bytes], dict[int, str]]


async def _jsonl(rt: Runtime, head: _Head) -> AsyncIterator[bytes]:
    """The log export (the format of gateway/audit/export.py), produced page by page."""
    first, stop, edge, notes = head
    header = {
        "format": LOG_EXPORT_FORMAT,
        "origin": rt.audit_log.name,
        "vkey": rt.audit_log.vkey,
        "start": first,
        "frontier": [_b64(h) for h in edge],
    }
    yield orjson.dumps(header) + b"\n"
    if first in notes:
        yield orjson.dumps({"checkpoint": notes[first]}) + b"\n"
    at = first

    def page(c: Connection) -> list[ledger.StoredLeaf]:
        return list(ledger.iter_leaves(c, start=at, end=min(at + 1000, stop)))

    while at < stop:
        leaves = await _read(rt, page)
        if not leaves:
            return
        out = []
        for leaf in leaves:
            out.append(b'{"index":%d,"event":%s}\n' % (leaf.index, leaf.event))
            if leaf.index + 1 in notes:
                out.append(orjson.dumps({"checkpoint": notes[leaf.index + 1]}) + b"\n")
        yield b"".join(out)
        at = leaves[-1].index + 1


def _export_head(c: Connection, start: int | None, end: int | None) -> _Head:
    first = ledger.pruned_size(c) if start is None else start
    if end is None:
        latest = ledger.latest_checkpoint(c)
        end = latest.size if latest else first
    if not 0 <= first <= end:
        raise BadRequest(Reason.INVALID_REQUEST, f"Cannot export leaves [{first}, {end}).")
    edge = frontier(first, ledger.hash_reader(c))
    notes = {cp.size: cp.note for cp in ledger.checkpoints(c, min_size=first, max_size=end)}
    return first, end, edge, notes


async def _csv(rt: Runtime, f: query.Filters) -> AsyncIterator[bytes]:
    columns = [
        "ts", "decision_id", "decision", "status", "endpoint", "tier", "model",
        "subject", "org_id", "client_id", "policy_version", "latency_ms", "reasons",
    ]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    cursor: str | None = None

    def next_page(c: Connection) -> tuple[list[dict[str, Any]], str | None]:
        return query.decisions(c, filters=f, limit=query.MAX_PAGE, cursor=cursor)

    while True:
        rows, cursor = await _read(rt, next_page)
        for row in rows:
            writer.writerow({**row, "reasons": " ".join(row["reasons"])})
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if cursor is None:
            return


def _checkpoint(rt: Runtime, cp: ledger.StoredCheckpoint) -> dict[str, Any]:
    return {
        "origin": rt.audit_log.name,
        "size": cp.size,
        "root": _b64(cp.root),
        "note": cp.note,
        "vkey": rt.audit_log.vkey,
    }


def _decided(d: Any) -> dict[str, Any]:
    return {
        "allow": d.allow,
        "reasons": list(d.reasons),
        "max_tokens": d.obligations.max_tokens,
        "keep_prompt": d.obligations.keep_prompt,
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
