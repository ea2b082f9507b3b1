"""CPU cost per request of the limits stage and usage accounting, memory vs Redis storage.

    .venv/bin/python bench/limits_cost.py [--redis redis://127.0.0.1:6379/0] [-n 20000]
    PYTHONPATH=/tmp/before .venv/bin/python bench/limits_cost.py ...   # another tree

Runs, on one event loop, what the pipeline runs per model call after the policy: the
per-subject rate and `admit` with every tier limit on (requests, tokens, daily budget,
in-flight), reading the usage of a chat answer, `settle` and the usage book's `record`
(its database flush is off the request path and not included). A tree whose `admit`
counts the rate itself (`limiter.RATE_IN_ADMIT`) is called as flow.py calls it; an older
tree gets `hit` then `admit`, as its flow.py did. Columns: `hit` alone (what /v1/models
pays), the model call's limits stage (`admit` + `settle`, rate included), and the whole
(+ usage read and recorded). Reports CPU µs per request (`time.process_time`, so waiting
on Redis is not counted; the Redis client's work is), over `--rounds` rounds per storage.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson

from gateway.limits import limiter as limiter_module
from gateway.limits.limiter import Limiter
from gateway.limits.quota import Quotas
from gateway.metrics import Metrics
from gateway.policy.decision import LimitCaps
from gateway.settings import TierLimits
from gateway.usage.book import UsageBook
from gateway.usage.figures import Usage
from gateway.usage.meter import UsageMeter
from gateway.usage.tokenizer import Tokenizer

BODY = orjson.dumps(
    {
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "created": 0,
        "model": "demo-general",
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x " * 9}}],
    }
)
USAGE = Usage.of(5, 9)
REQUEST = {"model": "demo-general", "messages": [{"role": "user", "content": "Say hello."}]}
ON = TierLimits(
    requests_per_minute=100_000_000,
    tokens_per_minute=10**12,
    daily_tokens=10**15,
    in_flight=100_000,
)


class NoDb:
    """The book's flush never runs here; it only needs something to hold."""


def limiter(storage: str, metrics: Metrics) -> Limiter:
    quotas = Quotas.from_config(policy_data={}, overrides={"public": ON}, tiers=["public"])
    return Limiter(
        rate="1000000/minute",
        storage_uri=storage,
        quotas=quotas,
        in_flight_ttl_s=900,
        metrics=metrics,
        tiers=["public"],
    )


async def measure(storage: str, n: int) -> tuple[float, float, float]:
    metrics = Metrics()
    lim = limiter(storage, metrics)
    book = UsageBook(NoDb(), flush_s=3600, metrics=metrics)  # type: ignore[arg-type]
    tokenizer = Tokenizer()
    folded = getattr(limiter_module, "RATE_IN_ADMIT", False)

    async def rate(i: int) -> None:
        await lim.hit("bench-subject", tier="public")

    async def stage(i: int) -> None:
        if not folded:
            await lim.hit("bench-subject", tier="public")
        admission = await lim.admit(
            subject="bench-subject",
            org="bench-org",
            tier="public",
            model="demo-general",
            caps=LimitCaps(),
            reserve=3 + 16,
            request_id=f"{i:032x}",
        )
        await admission.settle(USAGE)

    async def full(i: int) -> None:
        if not folded:
            await lim.hit("bench-subject", tier="public")
        admission = await lim.admit(
            subject="bench-subject",
            org="bench-org",
            tier="public",
            model="demo-general",
            caps=LimitCaps(),
            reserve=3 + 16,
            request_id=f"{i:032x}",
        )
        meter = UsageMeter(request=REQUEST, tokenizer=tokenizer)
        usage = await meter.of_body(BODY)
        await admission.settle(usage)
        book.record(org_id="bench-org", model="demo-general", tier="public", usage=usage)

    results = []
    for step in (rate, stage, full):
        for i in range(n // 10):  # warm-up
            await step(i)
        start = time.process_time()
        for i in range(n):
            await step(i)
        results.append((time.process_time() - start) / n * 1e6)
    return results[0], results[1], results[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--redis", help="also measure this Redis, e.g. redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    storages = ["memory://"] + ([args.redis] if args.redis else [])
    load = Path("/proc/loadavg").read_text().split()[0]
    folded = getattr(limiter_module, "RATE_IN_ADMIT", False)
    tree = Path(limiter_module.__file__).parents[2]
    print(f"tree: {tree} (rate in admit: {folded}), load {load}")
    print("| storage | round | hit alone µs/req | limits stage µs/req | + usage µs/req |")
    print("|---|---:|---:|---:|---:|")
    for rnd in range(args.rounds):
        for storage in storages:
            rate, stage, full = asyncio.run(measure(storage, args.n))
            kind = storage.split("://")[0]
            print(f"| {kind} | {rnd + 1} | {rate:.1f} | {stage:.1f} | {full:.1f} |")


if __name__ == "__main__":
    main()
