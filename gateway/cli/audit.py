"""`audit`: read, export, verify, prove and explain the audit log from the command line.

`verify`, `prove` and `explain` read the database; `verify-export` needs only an export
file and the log's public key, so an auditor can run it anywhere.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import ops
from gateway.audit import ledger, query, replay
from gateway.audit.checkpoint import NoteError, NoteVerifier, existing_verifier
from gateway.audit.export import export_log
from gateway.audit.proofs import InclusionProof
from gateway.audit.verify import Report, verify_export, verify_log
from gateway.cli.context import with_engine
from gateway.cli.output import JsonFlag, emit, emit_rows, fail, iso_utc
from gateway.db.models import AuditEvent
from gateway.settings import Settings, audit_log_origin

app = typer.Typer(help="The audit log.", no_args_is_help=True)

COLUMNS = ["ts", "decision_id", "decision", "status", "tier", "model", "subject", "reasons"]
T = TypeVar("T")

Since = Annotated[datetime | None, typer.Option(help="From this time (ISO 8601, UTC if no zone).")]
Until = Annotated[datetime | None, typer.Option(help="Before this time.")]
Org = Annotated[str | None, typer.Option("--org", help="Organization id.")]
Subject = Annotated[str | None, typer.Option(help="Subject (the caller).")]
Model = Annotated[str | None, typer.Option(help="Model name.")]
Tier = Annotated[str | None, typer.Option(help="Effective tier.")]
Decision = Annotated[str | None, typer.Option(help="allow or deny.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="A reason code.")]
Endpoint = Annotated[
    str | None,
    typer.Option(help="An endpoint (oauth.token), or a prefix ending in '.' (admin.)."),
]
VkeyOpt = Annotated[
    str | None,
    typer.Option("--vkey", help="The log's verifier key; default: from the configured key."),
]


@app.command()
def tail(
    n: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many decisions.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The most recent decisions, oldest first; full decision ids, UTC timestamps."""

    async def work(engine: AsyncEngine) -> None:
        events = reversed(await ops.recent_audit(engine, limit=n))
        emit_rows([_row(ev) for ev in events], columns=COLUMNS, as_json=as_json)

    with_engine(work)


@app.command("query")
def query_(
    since: Since = None,
    until: Until = None,
    org: Org = None,
    subject: Subject = None,
    model: Model = None,
    tier: Tier = None,
    decision: Decision = None,
    reason: ReasonOpt = None,
    endpoint: Endpoint = None,
    limit: Annotated[int, typer.Option(min=1, max=query.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, typer.Option(help="From a previous page's next cursor.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Decisions matching every filter given, oldest first, one page at a time."""
    filters = _filters(since, until, org, subject, model, tier, decision, reason, endpoint)
    page, next_cursor = _read(
        lambda c: query.decisions(c, filters=filters, limit=limit, cursor=cursor)
    )
    if as_json:
        print(json.dumps({"decisions": page, "next_cursor": next_cursor}))
        return
    emit_rows(page, columns=COLUMNS, as_json=False)
    if next_cursor:
        print(f"next page: --cursor {next_cursor}", file=sys.stderr)


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl (the verifiable log) or csv.")],
    out: Annotated[Path | None, typer.Option("--out", help="File (default: stdout).")] = None,
    start: Annotated[int | None, typer.Option(help="jsonl: first leaf index.")] = None,
    end: Annotated[int | None, typer.Option(help="jsonl: end leaf (a checkpoint size).")] = None,
    since: Since = None,
    until: Until = None,
    org: Org = None,
    subject: Subject = None,
    model: Model = None,
    tier: Tier = None,
    decision: Decision = None,
    reason: ReasonOpt = None,
    endpoint: Endpoint = None,
) -> None:
    """jsonl: the log's leaves and checkpoints, for `verify-export`; csv: decision rows."""
    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv")
    settings = Settings()
    stream = out.open("wb") if out else sys.stdout.buffer
    try:
        if fmt == "jsonl":
            origin, vkey = audit_log_origin(settings), _verifier(None).vkey

            def jsonl(c: Connection) -> int:
                first = ledger.pruned_size(c) if start is None else start
                return export_log(c, stream.write, origin=origin, vkey=vkey, start=first, end=end)

            _read(jsonl)
        else:
            filters = _filters(since, until, org, subject, model, tier, decision, reason, endpoint)
            _read(lambda c: _csv(c, filters, stream))
    finally:
        if out:
            stream.close()
        else:
            stream.flush()


@app.command()
def verify(
    start: Annotated[int | None, typer.Option(help="First leaf (default: all kept).")] = None,
    end: Annotated[int | None, typer.Option(help="End leaf (default: all).")] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="A checkpoint you kept earlier; the log must hold it."),
    ] = None,
    vkey: VkeyOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the log in the database; exit 1 naming the first broken leaf or checkpoint."""
    verifier = _verifier(vkey)
    kept = [p.read_text() for p in checkpoint or []]
    report = _read(lambda c: verify_log(c, verifier=verifier, start=start, end=end, trusted=kept))
    _report(report, as_json)


@app.command("verify-export")
def verify_export_(
    file: Annotated[Path, typer.Argument(help="A file from `audit export --format jsonl`.")],
    vkey: Annotated[str, typer.Option("--vkey", help="The log's verifier key.")],
    as_json: JsonFlag = False,
) -> None:
    """Check an export offline, against the log's public key only: no database."""
    verifier = _parse_vkey(vkey)
    with file.open("rb") as lines:
        report = verify_export(lines, verifier=verifier)
    _report(report, as_json)


@app.command()
def prove(
    decision_id: Annotated[str, typer.Argument(help="The full decision id.")],
    kind: Annotated[str, typer.Option(help="decision or outcome.")] = "decision",
    leaf_out: Annotated[
        Path | None, typer.Option("--leaf-out", help="Write the leaf (event bytes) here.")
    ] = None,
) -> None:
    """An inclusion proof (C2SP tlog-proof) of the decision's leaf in the latest checkpoint."""

    def work(c: Connection) -> tuple[ledger.StoredLeaf, InclusionProof]:
        leaf = ledger.leaf_of(c, decision_id=decision_id, kind=kind)
        if leaf is None:
            fail(f"no {kind} leaf for decision {decision_id}")
        latest = ledger.latest_checkpoint(c)
        if latest is None or latest.size <= leaf.index:
            fail(f"leaf {leaf.index} is not in a checkpoint yet; retry after the next one")
        path = ledger.prove_inclusion(c, index=leaf.index, size=latest.size)
        return leaf, InclusionProof(leaf.index, path, latest.note)

    leaf, proof = _read(work)
    if leaf_out:
        leaf_out.write_bytes(leaf.event)
    sys.stdout.write(proof.text())


@app.command()
def checkpoint(as_json: JsonFlag = False) -> None:
    """The latest signed checkpoint and the log's verifier key."""
    latest = _read(ledger.latest_checkpoint)
    vkey = _verifier(None).vkey
    if latest is None:
        fail("no checkpoint has been signed yet")
    if as_json:
        print(json.dumps({"size": latest.size, "note": latest.note, "vkey": vkey}))
        return
    sys.stdout.write(latest.note)
    print(f"# verifier key: {vkey}", file=sys.stderr)


@app.command()
def archive(
    older_than: Annotated[int, typer.Option("--older-than", min=0, help="Days.")],
    out: Annotated[Path, typer.Option("--out", help="The archive file (JSONL export).")],
) -> None:
    """Export events older than N days (up to a checkpoint) to a file, then prune them
    from the database; their hashes stay, so what remains still verifies and proves."""
    origin, vkey = audit_log_origin(Settings()), _verifier(None).vkey
    cutoff = datetime.now(UTC) - timedelta(days=older_than)

    async def work(engine: AsyncEngine) -> tuple[int, int]:
        async with engine.begin() as conn:
            return await conn.run_sync(_archive)

    def _archive(c: Connection) -> tuple[int, int]:
        start = ledger.pruned_size(c)
        cut = ledger.archivable_size(c, before=cutoff)
        if cut <= start:
            return start, 0
        with out.open("xb") as f:  # never overwrite an earlier archive
            export_log(c, f.write, origin=origin, vkey=vkey, start=start, end=cut)
        return start, ledger.prune(c, below=cut)

    start, pruned = with_engine(work)
    if not pruned:
        print("nothing to archive: no checkpoint older than that")
        return
    print(f"archived leaves {start}..{start + pruned - 1} to {out} and pruned them")


@app.command()
def explain(
    decision_id: Annotated[str, typer.Argument(help="The full decision id.")],
    as_json: JsonFlag = False,
) -> None:
    """Replay the decision with the archived policy that made it (exit 1 if it differs)."""
    try:
        bundle, event = _read(lambda c: replay.load_decision(c, decision_id))
        result = _run(replay.explain(bundle, event))
    except replay.ReplayError as exc:
        fail(str(exc))
    record = {
        "decision_id": decision_id,
        "policy_version": result.recorded.policy_version,
        "recorded": _decided(result.recorded),
        "replayed": _decided(result.replayed),
        "reproduced": result.reproduced,
        "input": result.policy_input,
    }
    emit(record, as_json=as_json)
    if not result.reproduced:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- helpers


def _read(work: Callable[[Connection], T]) -> T:
    async def go(engine: AsyncEngine) -> T:
        async with engine.connect() as conn:
            return await conn.run_sync(work)

    return with_engine(go)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _filters(
    since: datetime | None,
    until: datetime | None,
    org: str | None,
    subject: str | None,
    model: str | None,
    tier: str | None,
    decision: str | None,
    reason: str | None,
    endpoint: str | None = None,
) -> query.Filters:
    if decision not in (None, "allow", "deny"):
        fail("--decision must be allow or deny")
    return query.Filters(
        since=_utc(since),
        until=_utc(until),
        org_id=org,
        subject=subject,
        model=model,
        tier=tier,
        decision=decision,
        reason=reason,
        endpoint=endpoint,
    )


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None or ts.tzinfo is not None:
        return ts
    return ts.replace(tzinfo=UTC)


def _verifier(vkey: str | None) -> NoteVerifier:
    if vkey:
        return _parse_vkey(vkey)
    settings = Settings()
    return existing_verifier(
        origin=audit_log_origin(settings),
        key_file=settings.audit_log.key_file,
        seed_b64=settings.audit_log.key_seed.get_secret_value(),
    )


def _parse_vkey(vkey: str) -> NoteVerifier:
    try:
        return NoteVerifier.from_vkey(vkey)
    except NoteError as exc:
        fail(f"--vkey: {exc}")


def _report(report: Report, as_json: bool) -> None:
    problem = report.problem
    record: dict[str, Any] = {
        "ok": report.ok,
        "leaves_checked": report.leaves,
        "checkpoints_checked": report.checkpoints,
        "size": report.size,
        "problem": problem.message if problem else None,
        "first_broken_leaf": problem.leaf_index if problem else None,
        "checkpoint": problem.checkpoint_size if problem else None,
    }
    emit(record, as_json=as_json)
    if not report.ok:
        raise typer.Exit(1)


def _decided(d: Any) -> dict[str, Any]:
    return {
        "allow": d.allow,
        "reasons": list(d.reasons),
        "max_tokens": d.obligations.max_tokens,
        "keep_prompt": d.obligations.keep_prompt,
    }


def _csv(conn: Connection, filters: query.Filters, stream: Any) -> None:
    columns = [c for c in COLUMNS if c != "reasons"] + [
        "endpoint", "org_id", "client_id", "policy_version", "latency_ms", "reasons"
    ]  # fmt: skip
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in query.iter_decisions(conn, filters=filters):
        writer.writerow({**row, "reasons": " ".join(row["reasons"])})
    text.detach()


def _row(ev: AuditEvent) -> dict[str, Any]:
    return {
        "ts": iso_utc(ev.ts),
        "decision_id": ev.id,
        "decision": ev.decision,
        "status": ev.status,
        "endpoint": ev.endpoint,
        "tier": ev.tier,
        "model": ev.model,
        "subject": ev.subject,
        "org_id": ev.org_id,
        "client_id": ev.client_id,
        "reasons": json.loads(ev.reasons),
        "policy_version": ev.policy_version,
        "latency_ms": ev.latency_ms,
    }
