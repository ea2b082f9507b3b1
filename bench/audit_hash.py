"""CPU per audit event: canonical JSON, leaf hash, tree hashes, and the ledger insert.

Run: .venv/bin/python bench/audit_hash.py [--n 20000] [--batch 8]

Prints µs of process CPU per event for:
- RFC 8785 by the `rfc8785` package (the reference) and by our fast path (orjson with
  sorted keys, value-domain check; gateway/audit/canonical.py), same bytes;
- the leaf hash and the stored tree hashes of one append (gateway/audit/tlog.py);
- the marginal cost of the log in the audit writer's transaction on SQLite
  (synchronous=FULL, the shipped default): batches of --batch audit rows committed as
  gateway/db/access.py does, without and then with `ledger.append` of their leaves in
  the same transaction (a checkpoint signed every 1000 leaves). Process CPU, so the
  kernel's share of the commit counts; waiting for the disk does not.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert

from gateway.audit import ledger
from gateway.audit.canonical import canonical_bytes, event_leaf, timestamp
from gateway.audit.checkpoint import NoteSigner
from gateway.audit.tlog import append_leaves, leaf_hash
from gateway.db.engine import make_sync_sqlite_engine
from gateway.db.migrate import upgrade
from gateway.db.models import AuditEvent

T0 = datetime(2026, 11, 26, tzinfo=UTC)
IDS: list[str] = []  # decision ids; empty: sequential


def event(i: int) -> dict[str, Any]:
    """A decision event of the gateway's shape and typical size (~700 bytes)."""
    return {
        "v": 1,
        "kind": "decision",
        "decision_id": IDS[i] if IDS else f"{i:032x}",
        "ts": timestamp(T0 + timedelta(microseconds=i)),
        "actor": {
            "subject": "svc-analyst-42",
            "org_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "client_id": "cli_abcdef0123456789",
            "token_id": f"jti-{i:016x}",
            "source": "127.0.0.1",
            "user_agent": "OpenAI/Python 1.55.0",
        },
        "action": "model_call",
        "endpoint": "/v1/chat/completions",
        "tier": "verified",
        "model": "general-tac",
        "decision": "allow",
        "reasons": ["allowed"],
        "policy_version": "sha256:0123456789abcdef",
        "obligations": {"max_tokens": 4096, "keep_prompt": False},
        "status": 200,
        "latency_us": 1234 + i % 1000,
        "request_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }


def make_ids(n: int, kind: str) -> list[str]:
    if kind == "ordered":
        return [f"{i:016x}{random.getrandbits(64):016x}" for i in range(n)]
    return [f"{random.getrandbits(128):032x}" for _ in range(n)]


def per_item_us(fn: Callable[[int], object], n: int) -> float:
    start = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--commits", type=int, default=8000, help="events for the DB part")
    parser.add_argument(
        "--ids",
        choices=["random", "ordered"],
        default="random",
        help="decision ids as the gateway makes them (random) or time-ordered",
    )
    args = parser.parse_args()
    n, batch = args.n, args.batch
    IDS.extend(make_ids(n, args.ids))
    events = [event(i) for i in range(n)]
    assert all(canonical_bytes(e) == rfc8785.dumps(e) for e in events[:100])
    data = [canonical_bytes(e) for e in events]
    hashes = [leaf_hash(d) for d in data]

    rows: list[tuple[str, float]] = [
        ("rfc8785.dumps (reference)", per_item_us(lambda i: rfc8785.dumps(events[i]), n // 4)),
        ("canonical_bytes (fast path)", per_item_us(lambda i: canonical_bytes(events[i]), n)),
        ("leaf hash SHA-256(0x00||leaf)", per_item_us(lambda i: leaf_hash(data[i]), n)),
        ("canonical_bytes + leaf hash", per_item_us(lambda i: event_leaf(events[i]), n)),
    ]

    state: dict[str, Any] = {"size": 0, "frontier": []}

    def append_one(i: int) -> None:
        _, state["frontier"] = append_leaves(state["size"], state["frontier"], [hashes[i]])
        state["size"] += 1

    rows.append(("stored tree hashes of one append", per_item_us(append_one, n)))

    k = min(args.commits, n)
    baseline, with_log = commit_costs(data[:k], events[:k], batch)
    rows.append((f"audit rows alone, SQLite, batches of {batch}", baseline))
    rows.append(("audit rows + ledger.append, same transactions", with_log))
    rows.append(("**the log's marginal cost in the writer**", with_log - baseline))

    print(f"{n} events, {len(data[0])} bytes of canonical JSON each\n")
    print("| step | µs CPU per event |\n|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} |")


def audit_row(i: int, e: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": e["decision_id"],
        "ts": T0 + timedelta(microseconds=i),
        "endpoint": "chat.completions",
        "subject": e["actor"]["subject"],
        "client_id": e["actor"]["client_id"],
        "org_id": e["actor"]["org_id"],
        "token_id": e["actor"]["token_id"],
        "tier": e["tier"],
        "model": e["model"],
        "decision": e["decision"],
        "reasons": '["allowed"]',
        "status": 200,
        "policy_version": e["policy_version"],
        "latency_ms": 1.234,
        "request_hash": e["request_sha256"],
    }


def commit_costs(
    data: list[bytes], events: list[dict[str, Any]], batch: int
) -> tuple[float, float]:
    """µs CPU per event: audit rows alone, and audit rows plus their leaves."""
    audit = AuditEvent.__table__  # type: ignore[attr-defined]
    signer = NoteSigner("bench.example/audit", Ed25519PrivateKey.generate())
    policy = ledger.CheckpointPolicy(signer=signer, every=1000, interval=timedelta(hours=1))
    rows = [audit_row(i, e) for i, e in enumerate(events)]
    leaves = [
        ledger.LeafInput(e["decision_id"], "decision", d) for e, d in zip(events, data, strict=True)
    ]
    out = []
    for log in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            engine = make_sync_sqlite_engine(url)
            tip = None  # as the audit writer does: the right edge kept between batches
            start = time.process_time()
            for b in range(0, len(rows), batch):
                with engine.begin() as conn:
                    conn.execute(insert(audit), rows[b : b + batch])
                    if log:
                        tip = ledger.append(
                            conn, leaves[b : b + batch], now=T0, policy=policy, known=tip
                        ).tip
            out.append((time.process_time() - start) / len(rows) * 1e6)
            engine.dispose()
    return out[0], out[1]


if __name__ == "__main__":
    main()
