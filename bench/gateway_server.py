"""Run the gateway for bench/run.py: uvicorn as `tac-gateway serve` runs it, optionally profiled.

Usage: python bench/gateway_server.py SETTINGS_JSON PORT   (BENCH_WORKERS=N: N worker processes)

SETTINGS_JSON holds the keyword arguments for `Settings(...)`. Profiling (off by default):
BENCH_PROFILE=pyinstrument|cprofile and BENCH_PROFILE_OUT=<path prefix>. The profile is
written when uvicorn returns, i.e. after SIGINT/SIGTERM. Both profilers see the event-loop
thread only; SQL runs partly in aiosqlite's worker threads (bench/run.py reports the CPU of
each thread from /proc).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

from gateway.app import create_app, prepare_shared_state
from gateway.serve import run_server, run_workers
from gateway.settings import Settings


def _serve(settings: Settings, port: int) -> None:
    run_server(create_app(settings, served=True), host="127.0.0.1", port=port, settings=settings)


def _serve_workers(settings_file: Path, port: int, workers: int) -> None:
    """`tac-gateway serve --workers N` as the CLI runs it; each worker reads the file."""
    os.environ["TACGW_CONFIG_FILE"] = str(settings_file)  # JSON is YAML
    asyncio.run(prepare_shared_state(Settings()))
    run_workers(host="127.0.0.1", port=port, workers=workers)


def _gc_stats(out: Path) -> None:
    """Time every garbage collection (BENCH_GC_STATS=<file>): written at exit."""
    import atexit
    import gc

    spent = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            entry = spent[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started[0]
            if time.monotonic() - written[0] > 1.0:  # the process may end by a signal
                written[0] = time.monotonic()
                dump()

    def dump() -> None:
        out.write_text(json.dumps({g: {"n": n, "s": round(s, 4)} for g, (n, s) in spent.items()}))

    written = [time.monotonic()]
    gc.callbacks.append(on_gc)
    atexit.register(dump)


def main() -> None:
    if os.environ.get("BENCH_GC_STATS"):
        _gc_stats(Path(os.environ["BENCH_GC_STATS"]))
    settings = Settings(**json.loads(Path(sys.argv[1]).read_text()))
    port = int(sys.argv[2])
    workers = int(os.environ.get("BENCH_WORKERS", "1"))
    if workers > 1:
        _serve_workers(Path(sys.argv[1]), port, workers)
        return
    mode = os.environ.get("BENCH_PROFILE", "")
    out = Path(os.environ.get("BENCH_PROFILE_OUT", "gateway-profile"))
    if mode == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        try:
            _serve(settings, port)
        finally:
            profiler.stop()
            out.with_suffix(".pyinstrument.txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False)
            )
            try:
                out.with_suffix(".pyinstrument.html").write_text(profiler.output_html())
            except Exception as exc:  # the text report above is the one that matters
                print(f"pyinstrument HTML not written: {exc!r}", file=sys.stderr)
    elif mode == "cprofile":
        # CPU time of the event-loop thread, not wall time: idle waits in epoll count ~0.
        prof = cProfile.Profile(time.thread_time)
        prof.enable()
        try:
            _serve(settings, port)
        finally:
            prof.disable()
            prof.dump_stats(out.with_suffix(".pstats"))
            with out.with_suffix(".cprofile.txt").open("w") as fh:
                stats = pstats.Stats(prof, stream=fh)
                stats.sort_stats("cumulative").print_stats(60)
                stats.sort_stats("tottime").print_stats(40)
    else:
        _serve(settings, port)


if __name__ == "__main__":
    main()
