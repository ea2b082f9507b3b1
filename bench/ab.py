"""Before/after: bench/run.py on two source trees, alternating, with the same venv.

    git -C . worktree add /tmp/tacgw-before HEAD~1        # or: git archive REV | tar -x -C DIR
    .venv/bin/python bench/ab.py --before /tmp/tacgw-before --rounds 2 -- \
        --transport aiohttp --concurrency 16 --duration 15

Each round runs `bench/run.py ARGS` from the "before" tree, then from this tree ("after"),
then (next round) after and before, so neither always goes first. The gateway is
imported from each tree through PYTHONPATH. Prints one line per run (gateway CPU ms/req,
split into event loop and other threads, the upstream's as a load gauge, the 1-minute
load average) and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _run(tree: Path, args: list[str], results: Path) -> dict[str, object]:
    before = set(results.glob("*.json"))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load = float(Path("/proc/loadavg").read_text().split()[0])
    subprocess.run(
        [sys.executable, str(tree / "bench" / "run.py"), "--results", str(results), *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        timeout=1800,
    )
    new = sorted(set(results.glob("*.json")) - before)
    data = json.loads(new[-1].read_text())
    gw = [r for r in data["results"] if r["scenario"] == "gateway"]
    return {"load": load, "rows": gw}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--before", type=Path, required=True, help="the tree to compare against")
    p.add_argument("--after", type=Path, default=HERE)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--results", type=Path, default=HERE / "bench" / "results" / "ab")
    p.add_argument("run_args", nargs="*", help="after --: bench/run.py's arguments")
    a = p.parse_args()
    a.results.mkdir(parents=True, exist_ok=True)
    seen: dict[str, list[float]] = {"before": [], "after": []}
    for rnd in range(a.rounds):
        order = [("before", a.before), ("after", a.after)]
        if rnd % 2:
            order.reverse()
        for name, tree in order:
            out = _run(tree, a.run_args, a.results)
            for r in out["rows"]:  # type: ignore[attr-defined]
                th = r["gateway_threads_ms_per_req"]
                seen[name].append(r["gateway_cpu_ms_per_req"])
                print(
                    f"round {rnd + 1} {name:6} c{r['concurrency']:<3} {r['rps']:7,.0f} req/s  "
                    f"gateway {r['gateway_cpu_ms_per_req']:.3f} ms CPU/req "
                    f"(loop {th['event_loop']:.3f} + other {th['other_threads']:.3f})  "
                    f"upstream {r['upstream_cpu_ms_per_req']:.3f}  load {out['load']:.2f}",
                    flush=True,
                )
    for name, values in seen.items():
        if values:
            print(f"{name}: median gateway CPU {statistics.median(values):.3f} ms/req of {values}")


if __name__ == "__main__":
    main()
