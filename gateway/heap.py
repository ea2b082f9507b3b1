"""The served process's heap, settled once the app has started.

A started gateway holds a few hundred thousand long-lived objects (modules, FastAPI's
routes and schemas, SQLAlchemy's metadata, the policy bundle). CPython's full collection
walks all of them: ~0.1 s per collection on this project's benchmark, once every few
thousand requests, which is both CPU and the p99 of every request caught behind it
(bench/gateway_server.py, BENCH_GC_STATS). Freezing them after startup leaves the
collector the objects requests make. Only for a process that serves one app until it
exits: frozen objects are never collected, so an app built and dropped (as the tests
do) would stay in memory.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what startup left, then move every surviving object out of the collector's
    sight (`gc.freeze`): they live as long as the process anyway."""
    gc.collect()
    gc.freeze()
    import os

    t = os.environ.get("GC_T")
    if t:
        gc.set_threshold(*map(int, t.split(",")))
