"""Token issuance cost: gateway CPU µs per `POST /oauth/token` (client credentials).

Usage:
    .venv/bin/python bench/token_issue.py [--requests 2000] [--concurrency 1,16]
                                          [--tree DIR] [--rounds 3]

Starts the gateway as its own process (`bench/gateway_server.py`, as bench/run.py does:
fresh SQLite, `sqlite_synchronous` FULL, so every audit commit is fsynced), gets tokens
with httpx from this process at each concurrency, and divides the gateway process's
utime+stime (/proc) by the tokens issued (and the event loop's thread alone: the
rest is mostly the SQLite audit writer thread, its commits and fsyncs). `--tree DIR`
serves the `gateway` package of another checkout (e.g. `git archive` of the commit
before a change) with the same seeded database, for before/after figures; the rounds
of one run are reported each, then the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from run import Procs, _cpu_ticks, _main_thread_ticks, _prepare, _start_gateway, _workdir

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


async def _issue(url: str, auth: tuple[str, str], n: int, concurrency: int) -> int:
    """Get `n` tokens with `concurrency` requests in flight; return how many succeeded."""
    ok = 0
    left = n
    async with httpx.AsyncClient(auth=auth, timeout=30) as client:

        async def worker() -> None:
            nonlocal ok, left
            while left > 0:
                left -= 1
                reply = await client.post(url, data={"grant_type": "client_credentials"})
                ok += reply.status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", default="1,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tree", type=Path, help="serve the gateway package of this checkout")
    args = p.parse_args()
    if args.tree is not None:
        # The gateway process imports `gateway` from there first (PYTHONPATH precedes
        # the virtualenv's editable install).
        os.environ["PYTHONPATH"] = str(args.tree.resolve())
    settings = argparse.Namespace(
        database_url=None,
        rate_limit_storage="memory://",
        tier_limits="off",
        sqlite_synchronous="FULL",
        transport="aiohttp",
    )
    procs = Procs()
    with _workdir(keep=False) as tmp:
        try:
            env = _prepare(tmp, settings)
            # The token endpoint's own per-address limit (30/minute) would refuse the bench.
            shown = json.loads(env.settings_file.read_text())
            shown["token_endpoint_rate_limit"] = "1000000/minute"
            env.settings_file.write_text(json.dumps(shown))
            gw = _start_gateway(procs, env)
            client = next(c for c in env.clients if c.tier == "public")
            auth = (client.client_id, client.client_secret)
            url = f"http://127.0.0.1:{env.gateway_port}/oauth/token"
            asyncio.run(_issue(url, auth, 200, 4))  # warm-up: imports, caches, key load
            print(f"tree: {args.tree or 'this checkout'}; requests per round {args.requests}")
            print("| conc | round | tokens/s | gateway CPU µs/token | of which event loop |")
            print("|---|---|---|---|---|")
            for conc in (int(c) for c in args.concurrency.split(",")):
                figures = []
                for r in range(args.rounds):
                    before, loop0 = _cpu_ticks(gw.pid), _main_thread_ticks(gw.pid)
                    t0 = time.perf_counter()
                    ok = asyncio.run(_issue(url, auth, args.requests, conc))
                    wall, ticks = time.perf_counter() - t0, _cpu_ticks(gw.pid) - before
                    loop_us = (_main_thread_ticks(gw.pid) - loop0) * TICK_S * 1e6 / max(ok, 1)
                    if ok != args.requests:
                        sys.exit(f"only {ok} of {args.requests} token requests succeeded")
                    us = ticks * TICK_S * 1e6 / ok
                    figures.append(us)
                    print(f"| {conc} | {r + 1} | {ok / wall:.0f} | {us:.0f} | {loop_us:.0f} |")
                print(f"| {conc} | median | | {statistics.median(figures):.0f} | |")
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
