"""CPU per target choice: what routing adds to each request (budget: 0.02 ms).

Per request the forward stage calls `Balancer.choose` once (per try), counts the target's
in-flight request up and down, and records the outcome with `Balancer.succeeded`. This
times exactly that, for models of 1 to 16 targets, with one target ejected and one kept
busy so the health and tie-break paths run too. CPU time of this thread only.

Run: .venv/bin/python bench/balance.py [--n 200000]
"""

from __future__ import annotations

import argparse
import logging
import time

from gateway.routing.balance import Balancer
from gateway.routing.health import Rules
from gateway.routing.targets import Target

BUDGET_MS = 0.02


def balancer(n_targets: int) -> Balancer:
    b = Balancer(Rules(failures_to_down=1, backoff_s=3600.0, backoff_max_s=3600.0))
    b.sync(
        Target(
            model="m",
            name=f"t{i}",
            url=f"http://10.0.0.{i}:8000/v1",
            upstream_model="m",
            weight=1 + i % 3,
            headers={},
        )
        for i in range(n_targets)
    )
    states = list(b.states())
    if n_targets > 2:
        b.failed(states[0], "bench: ejected")  # the skip path
        states[1].in_flight = 5  # the tie-break path
    return b


def per_request_ms(b: Balancer, n: int) -> float:
    choose, succeeded = b.choose, b.succeeded
    start = time.thread_time()
    for _ in range(n):
        state = choose("m")
        assert state is not None
        state.in_flight += 1
        state.in_flight -= 1
        succeeded(state)
    return (time.thread_time() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n
    logging.disable(logging.WARNING)  # the set-up ejection's log line is not the output
    print("| targets | CPU ms per request (choose + in-flight + outcome) | budget |")
    print("|---:|---:|---:|")
    worst = 0.0
    for count in (1, 2, 4, 8, 16):
        ms = per_request_ms(balancer(count), n)
        worst = max(worst, ms)
        print(f"| {count} | {ms:.5f} | {BUDGET_MS} |")
    print(f"\nworst: {worst:.5f} ms ({'within' if worst <= BUDGET_MS else 'OVER'} budget)")


if __name__ == "__main__":
    main()
