"""The caller-disconnect watcher around each upstream call (`gateway.forward.relay.
unless_disconnected`): CPU µs per call for a call that answers at once, with the watcher
started at once (`WATCH_AFTER_S = 0`, as before 2026-11-27) and deferred (the default).

    .venv/bin/python bench/disconnect_watch.py [-n 50000] [--rounds 3]
    PYTHONPATH=<older tree> .venv/bin/python bench/disconnect_watch.py   # its own code

The caller never leaves here; `disconnected` waits on an event that is never set, as
uvicorn's `receive` does for a request whose body was read. uvloop, as `serve` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import uvloop

from gateway.forward import relay


async def _per_call_us(n: int, watch_after_s: float) -> float:
    never = asyncio.Event()

    async def disconnected() -> None:
        await never.wait()

    async def work() -> int:
        await asyncio.sleep(0)  # the upstream call yields to the loop while it waits
        return 1

    relay.WATCH_AFTER_S = watch_after_s
    for _ in range(n // 10):
        await relay.unless_disconnected(disconnected, work)
    t0 = time.process_time()
    for _ in range(n):
        await relay.unless_disconnected(disconnected, work)
    return (time.process_time() - t0) / n * 1e6


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


async def main(n: int, rounds: int) -> None:
    default = getattr(relay, "WATCH_AFTER_S", None)
    for r in range(rounds):
        load = _load()
        if default is None:  # a tree from before the deferred watcher (PYTHONPATH=<tree>)
            print(f"round {r + 1}: watcher at once {await _per_call_us(n, 0):5.2f} µs/call")
            continue
        now = await _per_call_us(n, 0)
        later = await _per_call_us(n, default)
        print(
            f"round {r + 1}: watcher at once {now:5.2f} µs/call   deferred "
            f"{default:g} s {later:5.2f} µs/call   (load {load})"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=50000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    uvloop.run(main(a.n, a.rounds))
