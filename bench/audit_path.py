"""The audit stage of one /v1 model call, in process: CPU µs per request, loop and writer apart.

    .venv/bin/python bench/audit_path.py                          # this tree: pieces + whole path
    .venv/bin/python bench/audit_path.py --before /tmp/tree --rounds 4   # A/B, alternating

Whole path: `--concurrency` (16) workers on one event loop, each a closed loop of what
`gateway.pipeline.flow` does per allowed model call — an `AuditDraft` filled as the stages
fill it (principal, tier, model, request hash, policy record with a real policy input
text, upstream target), `commit` (row, decision event, canonical bytes, leaf hash, the
real `AuditWriter` batching rows and leaves into one transaction: driver-level INSERT,
`ledger.append`, COMMIT with its fsync on a real SQLite file, `synchronous=FULL`), then
`report_delivery` (the outcome leaf, riding with the next batch) and the Prometheus
counters. One more request is counted as in flight the whole time, as the requests in
their upstream call are at c16, so batches go to the writer thread as they do under load
(a lone request's batch commits on the loop; bench/audit_handoff.py covers that case).
CPU: the event loop thread's (`time.thread_time` on the loop) and the rest of the
process's (the writer thread: insert, ledger, commit and the kernel's share of fsync),
divided by the requests committed. Waiting for the disk is not CPU and does not count.

Pieces: each step alone in a tight loop (process CPU µs per call), to show where the
loop's share goes. `--before DIR` runs this file's whole-path measurement with the
gateway imported from DIR (PYTHONPATH) and from this tree, alternating, `--rounds` times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]

POLICY_DOC: dict[str, Any] = {
    "principal": {
        "sub": "client-public-1",
        "client_id": "client-public-1",
        "org_id": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
        "tier_claim": "public",
        "scopes": ["models:call"],
        "token_id": "f0e1d2c3b4a5968778695a4b3c2d1e0f",
        "issuer": "https://gateway.example",
        "federated": False,
        "roles": [],
        "auth_strength": "client_secret",
        "auth_time": None,
        "pop": "bearer",
        "token_bound": False,
    },
    "trust": {
        "tier": "public",
        "org_id": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
        "org_status": "approved",
        "tier_expires_at": None,
        "lapsed": None,
    },
    "model": {
        "name": "demo-general",
        "tier_floor": "public",
        "screening": {"state": "current", "max_ci_high": None},
    },
    "request": {"endpoint": "chat.completions", "stream": False, "max_tokens": 64},
}


def _parts() -> dict[str, Any]:
    """What a request has by the time it commits (imported from the tree under test)."""
    from gateway.audit.event import Delivery, PolicyRecord, Usage, policy_input_text
    from gateway.identity.principal import Principal
    from gateway.reasons import Reason

    principal = Principal(
        subject="client-public-1",
        client_id="client-public-1",
        org_id="9f1c2d3e4b5a69788796a5b4c3d2e1f0",
        tier_claim="public",
        scopes=("models:call",),
        token_id="f0e1d2c3b4a5968778695a4b3c2d1e0f",
        issuer="https://gateway.example",
    )
    policy = PolicyRecord(
        version="0123456789abcdef",
        bundle_sha256="ab" * 32,
        input=policy_input_text(POLICY_DOC),
        allow=True,
        reasons=(Reason.ALLOWED,),
        max_tokens=64,
        keep_prompt=False,
    )
    delivery = Delivery(
        status=200,
        usage=Usage(prompt_tokens=12, completion_tokens=20, total_tokens=32),
        response_bytes=412,
        caller_left_early=False,
    )
    return {"principal": principal, "policy": policy, "delivery": delivery, "ok": (Reason.ALLOWED,)}


def _fill(draft: Any, parts: dict[str, Any]) -> None:
    draft.source, draft.user_agent = "127.0.0.1", "OpenAI/Python 1.55.0"
    draft.principal = parts["principal"]
    draft.request_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    draft.model = "demo-general"
    draft.tier = "public"
    draft.policy_version = "0123456789abcdef"
    draft.policy = parts["policy"]
    draft.upstream_target, draft.upstream_tries = "a", 1


async def whole(n: int, warmup: int, concurrency: int) -> dict[str, float]:
    """CPU µs per request of the whole audit path, loop and other threads apart."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.audit.checkpoint import NoteSigner
    from gateway.audit.ledger import CheckpointPolicy
    from gateway.audit.record import AuditDraft
    from gateway.audit.writer import AuditWriter
    from gateway.db.access import make_request_db
    from gateway.db.migrate import upgrade
    from gateway.metrics import Metrics

    parts = _parts()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
        upgrade(url)
        db = make_request_db(url, sqlite_synchronous="FULL")
        signer = NoteSigner("bench.example/audit", Ed25519PrivateKey.generate())
        # The shipped defaults (gateway/settings.py: every 1000 leaves or 10 s).
        policy = CheckpointPolicy(signer=signer, every=1000, interval=timedelta(seconds=10))
        writer = AuditWriter(db, log_policy=policy)
        writer.start()
        metrics = Metrics()
        writer.entered()  # the requests in their upstream call: batches are not alone
        left = [warmup + n]
        marks: dict[str, float] = {}

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                if left[0] == n - 1 and not marks:  # warm-up done: start the clocks
                    marks["t"], marks["p"] = time.thread_time(), time.process_time()
                writer.entered()
                try:
                    draft = AuditDraft(endpoint="chat.completions", writer=writer, metrics=metrics)
                    _fill(draft, parts)
                    await draft.commit(allow=True, status=200, reasons=parts["ok"])
                finally:
                    writer.left()
                draft.report_delivery(parts["delivery"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        loop_us = (time.thread_time() - marks["t"]) * 1e6 / n
        total_us = (time.process_time() - marks["p"]) * 1e6 / n
        writer.left()
        await writer.close()
        await db.close()
    return {"loop_us": loop_us, "other_us": total_us - loop_us, "total_us": total_us}


def _per_call(fn: Callable[[], object], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def pieces(n: int) -> list[tuple[str, float]]:
    """Each step of the loop's share alone, µs CPU per call."""
    from gateway.audit.canonical import canonical_bytes, timestamp
    from gateway.audit.event import Actor, decision_event, outcome_event
    from gateway.audit.tlog import leaf_hash
    from gateway.metrics import Metrics

    parts = _parts()
    metrics = Metrics()
    now = datetime.now(UTC)
    actor = Actor("client-public-1", "9f1c2d3e", "client-public-1", "f0e1d2c3", "127.0.0.1", "ua")

    def decision() -> dict[str, Any]:
        return decision_event(
            decision_id="00" * 16,
            ts=now,
            action="model_call",
            endpoint="chat.completions",
            actor=actor,
            tier="public",
            model="demo-general",
            allow=True,
            reasons=parts["ok"],
            status=200,
            latency_us=1234,
            request_sha256="ff" * 32,
            policy_version="0123456789abcdef",
            policy=parts["policy"],
        )

    d = parts["delivery"]

    def outcome() -> dict[str, Any]:
        return outcome_event(
            decision_id="00" * 16,
            ts=now,
            status=d.status,
            usage=d.usage,
            response_bytes=d.response_bytes,
            caller_left_early=d.caller_left_early,
            duration_us=5678,
        )

    dec, out = decision(), outcome()
    data = canonical_bytes(dec)

    def counters() -> None:
        if hasattr(metrics, "count_decision"):  # a tree with the cached children
            metrics.count_decision(
                "chat.completions", "public", "demo-general", "allow", "allowed", 0.0042
            )
            return
        metrics.requests.labels(
            "chat.completions", "public", "demo-general", "allow", "allowed"
        ).inc()
        metrics.latency.labels("chat.completions", "allow").observe(0.0042)

    return [
        ("os.urandom(16).hex() (decision id)", _per_call(lambda: os.urandom(16).hex(), n)),
        ("datetime.now(UTC)", _per_call(lambda: datetime.now(UTC), n)),
        ("timestamp(ts)", _per_call(lambda: timestamp(now), n)),
        ("decision_event(...)", _per_call(decision, n)),
        ("canonical_bytes(decision)", _per_call(lambda: canonical_bytes(dec), n)),
        ("leaf_hash(decision bytes)", _per_call(lambda: leaf_hash(data), n)),
        ("outcome_event(...)", _per_call(outcome, n)),
        ("canonical_bytes(outcome)", _per_call(lambda: canonical_bytes(out), n)),
        ("Prometheus: requests + latency", _per_call(counters, n)),
    ]


def _child(tree: Path, a: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "-n", str(a.n)]
    cmd += ["--warmup", str(a.warmup), "--concurrency", str(a.concurrency)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=900)
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=6000, help="requests measured")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--pieces", type=int, default=20000, help="calls per piece (0: skip)")
    p.add_argument("--before", type=Path, help="A/B: the tree to compare this one against")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--json", action="store_true", help="whole path only, one JSON line")
    a = p.parse_args()
    if a.json:
        print(json.dumps(asyncio.run(whole(a.n, a.warmup, a.concurrency))))
        return
    if a.before is None:
        if a.pieces:
            print("| piece (loop thread) | µs CPU per call |\n|---|---:|")
            for name, us in pieces(a.pieces):
                print(f"| {name} | {us:.2f} |")
        r = asyncio.run(whole(a.n, a.warmup, a.concurrency))
        print(
            f"\nwhole path c{a.concurrency}: {r['total_us']:.1f} µs CPU/request "
            f"(loop {r['loop_us']:.1f} + writer/other {r['other_us']:.1f})  "
            f"load {os.getloadavg()[0]:.2f}"
        )
        return
    seen: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for rnd in range(a.rounds):
        order = [("before", a.before), ("after", HERE)]
        if rnd % 2:
            order.reverse()
        for name, tree in order:
            load = os.getloadavg()[0]
            r = _child(tree, a)
            seen[name].append(r)
            print(
                f"round {rnd + 1} {name:6} {r['total_us']:7.1f} µs CPU/request "
                f"(loop {r['loop_us']:6.1f} + writer/other {r['other_us']:6.1f})  load {load:.2f}",
                flush=True,
            )
    for name, runs in seen.items():
        med = {
            k: statistics.median(r[k] for r in runs) for k in ("total_us", "loop_us", "other_us")
        }
        print(
            f"{name}: median {med['total_us']:.1f} µs/request "
            f"(loop {med['loop_us']:.1f} + writer/other {med['other_us']:.1f})"
        )


if __name__ == "__main__":
    main()
