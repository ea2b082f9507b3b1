"""CPU per policy decision: embedded rego-cpp, compiled bundle vs. re-planned query.

Run: .venv/bin/python bench/policy_eval.py [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson
from regopy import Interpreter

from gateway.policy.bundle import load_bundle
from gateway.policy.embedded import EmbeddedEngine

POLICIES = Path(__file__).resolve().parents[1] / "policies"
DOC = {
    "principal": {
        "sub": "c",
        "client_id": "c",
        "org_id": "o",
        "tier_claim": "critical",
        "scopes": ["models"],
        "token_id": "t",
        "auth_strength": "client_secret",
    },
    "trust": {
        "tier": "public",
        "org_id": "o",
        "org_status": "verified",
        "tier_expires_at": None,
        "lapsed": None,
    },
    "model": {"name": "cyber", "tier_floor": "critical"},
    "request": {"endpoint": "chat.completions", "stream": False, "max_tokens": 100},
}


def per_call_ms(fn: object, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (time.process_time() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    bundle = load_bundle(POLICIES)
    loop = asyncio.new_event_loop()
    evaluating = EmbeddedEngine(bundle, memo_size=0)
    compiled = per_call_ms(lambda: loop.run_until_complete(evaluating.decide(DOC)), n)
    memoized = EmbeddedEngine(bundle)
    memo_hit = per_call_ms(lambda: loop.run_until_complete(memoized.decide(DOC)), n)

    rego = Interpreter()
    for name, text in bundle.modules.items():
        rego.add_module(name, text)
    rego.add_data_json(orjson.dumps(bundle.data).decode())

    def replanned() -> None:
        rego.set_input_term(orjson.dumps(DOC).decode())
        rego.query("data.tacgw.authz.decision")

    replanned_ms = per_call_ms(replanned, max(n // 10, 100))
    print(
        f"| mode | CPU ms per decision |\n|---|---|\n"
        f"| compiled bundle, evaluated (memo off) | {compiled:.3f} |\n"
        f"| compiled bundle, memo hit (the default, repeated input) | {memo_hit:.3f} |\n"
        f"| re-planned query each time | {replanned_ms:.3f} |"
    )


if __name__ == "__main__":
    main()
