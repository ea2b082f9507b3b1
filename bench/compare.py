"""Side by side: the demo upstream, this gateway (in variants) and LiteLLM, wrk on loopback.

One command starts everything, measures, writes docs/performance.md and stops everything:

    .venv/bin/python bench/compare.py                       # all variants, c1/c16/c64, 2 rounds
    .venv/bin/python bench/compare.py --variants base --rounds 3 --duration 10

Targets: `upstream-direct` (wrk → demo upstream), one gateway per variant (wrk → gateway →
demo upstream; full pipeline, one worker, public tier, every tier limit counted but none
reached, as bench/run.py), and `litellm` (wrk → LiteLLM proxy → demo upstream; one
worker, master key, no database; bench/litellm_proxy.py). Rounds are interleaved: round
r runs every concurrency for every target before round r+1, the target order rotating,
so that the machine's load drifts touch every target alike; the table gives each
figure's median over the rounds. CPU per request is utime+stime of the target's process
tree (from /proc) over wrk's completed requests; the upstream's is reported apart.

Then the sequential probe (bench/ttfb.py): one request at a time with idle gaps, plain
and streaming, time to first byte of each target and what it adds to the direct
upstream's. And the per-stage split of the base gateway from its `Server-Timing` header
(a separate gateway with `server_timing` on, so the measured ones run the defaults).

Variants (`--variants`, comma-separated): base (SQLite, memory limits, embedded policy:
the embedded defaults), postgres, redis, opa, pg-redis (PostgreSQL + Redis, the
replicated setup), pg-redis-2w (the same, `serve --workers 2`). PostgreSQL, Redis and
OPA are started here on loopback (bench/services.py) and stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import litellm_proxy
import machine
import ttfb
from run import (
    Env,
    Procs,
    _check,
    _free_port,
    _raise_interrupt,
    _run_wrk,
    _start_gateway,
    _tier_limits,
    _token,
    _wait_http,
)
from services import Services

from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.demo.seed import seed

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DOC = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
LOAD_WARN = 1.5
VARIANTS = {
    # name: (database, limits storage, policy engine, worker processes)
    "base": ("sqlite", "memory", "embedded", 1),
    "postgres": ("postgres", "memory", "embedded", 1),
    "redis": ("sqlite", "redis", "embedded", 1),
    "opa": ("sqlite", "memory", "opa", 1),
    "pg-redis": ("postgres", "redis", "embedded", 1),
    "pg-redis-2w": ("postgres", "redis", "embedded", 2),
}


@dataclass
class Target:
    name: str
    url: str
    token: str
    proc: subprocess.Popen[bytes] | None  # None: the upstream itself
    detail: str


@dataclass
class Sample:
    target: str
    concurrency: int
    round: int
    load: float  # 1-minute load average just before the run
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float | None
    upstream_cpu_ms_per_req: float
    wrk_cpu_ms_per_req: float
    errors: int


@dataclass
class Report:
    started: str
    argv: list[str]
    commit: str
    machine: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    ttfb: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)
    litellm_outbound: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- targets


def _gateway(
    procs: Procs, services: Services, tmp: Path, name: str, up_port: int, *, timed: bool = False
) -> Target:
    db, limits, policy, workers = VARIANTS[name]
    home = tmp / ("gw-" + name + ("-timed" if timed else ""))
    home.mkdir()
    if db == "postgres":
        db_url = services.postgres_database(home.name.replace("-", "_"))
        db_url = db_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        db_url = f"sqlite+aiosqlite:///{home / 'gateway.db'}"
    upgrade(db_url)

    async def _seed() -> Any:
        engine = make_engine(db_url)
        try:
            return await seed(engine, upstream_url=f"http://127.0.0.1:{up_port}/v1")
        finally:
            await engine.dispose()

    clients = asyncio.run(_seed())
    port = _free_port()
    settings: dict[str, Any] = {
        "dev_mode": True,
        "database_url": db_url,
        "signing_key_file": str(home / "signing-key.pem"),
        "audit_log": {"key_file": str(home / "audit-log-key.pem")},
        "issuer": f"http://127.0.0.1:{port}",
        "rate_limit": "1000000/minute",
        "rate_limit_storage": services.redis() if limits == "redis" else "memory://",
        "tier_limits": _tier_limits("on"),
        "policy_engine": policy,
        "server_timing": timed,
    }
    if policy == "opa":
        settings["opa_url"] = services.opa()
    settings_file = home / "settings.json"
    settings_file.write_text(json.dumps(settings))
    env = Env(home, up_port, port, settings_file, clients)
    proc = _start_gateway(procs, env, workers=workers)
    label = "gateway" if name == "base" else f"gateway-{name}"
    if timed:
        label += "-timed"
    detail = f"{db}, {limits} limits, {policy} policy, {workers} worker(s)"
    return Target(label, f"http://127.0.0.1:{port}/v1/chat/completions", _token(env), proc, detail)


def _cpu(target: Target) -> int:
    return machine.cpu_ticks(machine.tree(target.proc.pid)) if target.proc else 0


def _measure(
    target: Target, upstream_pid: int, *, conns: int, duration_s: float, rnd: int
) -> Sample:
    load = machine.loadavg()
    up0, t0 = machine.cpu_ticks([upstream_pid]), _cpu(target)
    summary, wrk_cpu_s = _run_wrk(
        target.url,
        conns=conns,
        threads=1 if conns == 1 else 2,
        duration_s=duration_s,
        token=target.token,
        stream=False,
    )
    up1, t1 = machine.cpu_ticks([upstream_pid]), _cpu(target)
    n = max(1, summary["requests"])

    def per_req(ticks: int) -> float:
        return round(ticks / machine.CLK_TCK * 1000 / n, 3)

    return Sample(
        target=target.name,
        concurrency=conns,
        round=rnd,
        load=load,
        rps=round(summary["requests"] / (summary["duration_us"] / 1e6), 1),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        cpu_ms_per_req=per_req(t1 - t0) if target.proc else None,
        upstream_cpu_ms_per_req=per_req(up1 - up0),
        wrk_cpu_ms_per_req=round(wrk_cpu_s * 1000 / n, 3),
        errors=sum(summary["errors"].values()),
    )


def _stages(target: Target, n: int, gap_s: float) -> dict[str, float]:
    """Median ms per stage from `Server-Timing`, sequential requests with idle gaps."""
    seen: dict[str, list[float]] = {}
    headers = {"authorization": f"Bearer {target.token}"}
    with httpx.Client(timeout=10) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post(target.url, json=ttfb.BODY, headers=headers)
            # The caller's view of the same request: `client` minus `total` is the time
            # outside the pipeline (the server's parsing and writing, both hops, wake-ups).
            seen.setdefault("client", []).append((time.perf_counter() - t0) * 1000)
            for part in r.headers.get("server-timing", "").split(", "):
                stage, _, dur = part.partition(";dur=")
                if dur:
                    seen.setdefault(stage, []).append(float(dur))
            time.sleep(gap_s)
    return {k: round(statistics.median(v), 3) for k, v in seen.items()}


# --------------------------------------------------------------------------- report


def _median(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return statistics.median(real) if real else None


def _summary(samples: list[Sample]) -> dict[tuple[str, int], dict[str, Any]]:
    groups: dict[tuple[str, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.target, s.concurrency), []).append(s)
    out = {}
    for key, group in groups.items():
        out[key] = {
            "rps": _median([s.rps for s in group]),
            "p50": _median([s.p50_ms for s in group]),
            "p99": _median([s.p99_ms for s in group]),
            "cpu": _median([s.cpu_ms_per_req for s in group]),
            "cpus": [s.cpu_ms_per_req for s in group],
            "up": _median([s.upstream_cpu_ms_per_req for s in group]),
            "errors": sum(s.errors for s in group),
            "load": [s.load for s in group],
        }
    return out


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def render(report: Report) -> str:
    """The generated part of docs/performance.md."""
    loads = report.loads or [0.0]
    lines = [
        BEGIN,
        "<!-- written by bench/compare.py; edit the text around these markers, not inside -->",
        f"### Run of {report.started} (commit {report.commit})",
        "",
        "```sh",
        ".venv/bin/python " + " ".join(report.argv),
        "```",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report.machine.items()) + ".  ",
        f"Load average (1 min) during the run: {min(loads):.2f} to {max(loads):.2f}"
        + (
            f" — **above {LOAD_WARN}: other processes shared the 2 cores; treat req/s and "
            "latency as indicative, compare CPU/request and ratios within this run**"
            if max(loads) > LOAD_WARN
            else ""
        )
        + ".  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(report.versions.items())) + ".",
        "",
        "| target | setup |",
        "|---|---|",
    ]
    lines += [f"| {name} | {detail} |" for name, detail in report.targets.items()]
    lines += [
        "",
        "Throughput (median of the rounds; CPU ms/req of every round in brackets):",
        "",
        "| target | conc | req/s | p50 ms | p99 ms | CPU ms/req | upstream CPU ms/req "
        "| errors | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary = _summary(report.samples)
    for (name, conc), s in summary.items():
        rounds = ", ".join(_fmt(c) for c in s["cpus"])
        cpu = f"{_fmt(s['cpu'])} ({rounds})" if s["cpu"] is not None else "-"
        load = "-".join(f"{x:.1f}" for x in (min(s["load"]), max(s["load"])))
        lines.append(
            f"| {name} | {conc} | {s['rps']:,.0f} | {s['p50']:.2f} | {s['p99']:.2f} | {cpu} "
            f"| {_fmt(s['up'])} | {s['errors']} | {load} |"
        )
    lines += ["", *_ratios(summary), ""]
    if report.ttfb:
        lines += _ttfb_table(report.ttfb)
    if report.stages:
        lines += [
            "",
            "Per stage, base gateway with `server_timing` on, sequential (median ms of "
            "`Server-Timing`):",
            "",
            "| " + " | ".join(report.stages) + " |",
            "|" + "---:|" * len(report.stages),
            "| " + " | ".join(f"{v:.3f}" for v in report.stages.values()) + " |",
            "",
        ]
    if "litellm" in report.targets:
        seen = ", ".join(report.litellm_outbound) or "none"
        lines.append(f"LiteLLM's non-loopback connections seen after each of its runs: {seen}.")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _ratios(summary: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    out = []
    for (name, conc), s in summary.items():
        lite = summary.get(("litellm", conc))
        if name.startswith("gateway") and lite and lite["rps"]:
            out.append(
                f"- c{conc}: {name} serves {s['rps'] / lite['rps']:.1f}x LiteLLM's req/s "
                f"at {s['cpu'] / lite['cpu']:.2f}x its CPU per request."
                if s["cpu"] and lite["cpu"]
                else f"- c{conc}: {name} serves {s['rps'] / lite['rps']:.1f}x LiteLLM's req/s."
            )
    return out


def _ttfb_table(data: dict[str, dict[str, Any]]) -> list[str]:
    first = next(iter(data.values()))
    lines = [
        f"Sequential probe: {first['n']} requests per target and mode, one at a time, "
        f"{first['gap_ms']:g} ms idle after each, keep-alive (ms; *added* = the target's "
        "percentile minus the direct upstream's):",
        "",
        "| target | mode | TTFB p50 | TTFB p99 | added p50 | added p99 | first chunk p50 "
        "| added first p50 | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, d in data.items():
        lines.append(
            f"| {d['target']} | {d['mode']} | {d['p50']:.3f} | {d['p99']:.3f} "
            f"| {_fmt(d.get('added_p50'))} | {_fmt(d.get('added_p99'))} "
            f"| {_fmt(d.get('first_p50'))} | {_fmt(d.get('added_first_p50'))} | {d['errors']} |"
        )
        del key
    return lines


def write_doc(text: str, path: Path = DOC) -> None:
    """Replace the generated block of `path` (or append one) and keep the rest as it is."""
    old = path.read_text() if path.exists() else "# Performance\n\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


# --------------------------------------------------------------------------- main


def _commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.strip() or "unknown"


@contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    # /tmp, short: PostgreSQL's socket path limit and the postgres user's access.
    tmp = Path(tempfile.mkdtemp(prefix="tacgw-cmp-", dir="/tmp"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False, timeout=60)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS), help="gateway variants to run")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    p.add_argument("--warmup", type=float, default=2, help="seconds of c16 per target, once")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    p.add_argument("--probe", type=int, default=200, help="sequential requests per target/mode")
    p.add_argument("--gap-ms", type=float, default=20, help="idle after each probe request")
    p.add_argument("--probe-variants", default="base", help="gateway variants in the probe")
    p.add_argument("--stages", type=int, default=200, help="Server-Timing samples (0: none)")
    p.add_argument("--no-doc", action="store_true", help=f"do not write {DOC.relative_to(REPO)}")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (DBs, logs)")
    p.add_argument("--results", type=Path, default=BENCH / "results")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants {sorted(unknown)}; pick from {list(VARIANTS)}")
    concs = [int(c) for c in args.concurrency.split(",") if c]
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        argv=[os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]],
        commit=_commit(),
        machine=machine.facts(),
    )
    procs = Procs()
    try:
        with _workdir(args.keep) as tmp:
            services = Services(procs, tmp)
            try:
                _run(args, report, procs, services, tmp, variants, concs)
            finally:
                procs.stop_all()
                services.close()
                report.versions.update(services.versions)
    except KeyboardInterrupt:
        print("interrupted; everything stopped", file=sys.stderr)
        sys.exit(130)
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{stamp}-compare.json"
    out.write_text(json.dumps(asdict(report), indent=2))
    text = render(report)
    print(text)
    if not args.no_doc:
        write_doc(text)
        print(f"wrote {DOC} and {out}", file=sys.stderr)


def _run(
    args: argparse.Namespace,
    report: Report,
    procs: Procs,
    services: Services,
    tmp: Path,
    variants: list[str],
    concs: list[int],
) -> None:
    up_port = _free_port()
    up_log = tmp / "upstream.log"
    upstream = procs.start(
        [sys.executable, "-m", "gateway.demo.upstream", "--port", str(up_port)], log=up_log
    )
    _wait_http(f"http://127.0.0.1:{up_port}/healthz", upstream, up_log)
    direct = f"http://127.0.0.1:{up_port}/v1/chat/completions"
    targets = [Target("upstream-direct", direct, "", None, "demo upstream, wrk straight to it")]
    for v in variants:
        targets.append(_gateway(procs, services, tmp, v, up_port))
    if not args.no_litellm:
        proc, url, key = litellm_proxy.start(procs, tmp, f"http://127.0.0.1:{up_port}/v1")
        targets.append(
            Target("litellm", url, key, proc, "LiteLLM proxy, 1 worker, master key, no database")
        )
        report.versions["litellm"] = litellm_proxy.VERSION
    report.targets = {t.name: t.detail for t in targets}
    for t in targets:
        _check(t.url, t.token, False)
        _check(t.url, t.token, True)
        if args.warmup > 0:
            _run_wrk(
                t.url, conns=16, threads=2, duration_s=args.warmup, token=t.token, stream=False
            )
    print(f"targets: {[t.name for t in targets]}, tmp {tmp}", file=sys.stderr)
    for rnd in range(args.rounds):
        order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
        for conns in concs:
            for t in order:
                s = _measure(t, upstream.pid, conns=conns, duration_s=args.duration, rnd=rnd)
                report.samples.append(s)
                report.loads.append(s.load)
                print(
                    f"  r{rnd} {t.name:24} c{conns:<3} {s.rps:8,.0f} req/s p50 {s.p50_ms:6.2f} "
                    f"p99 {s.p99_ms:6.2f} ms CPU/req {s.cpu_ms_per_req} up "
                    f"{s.upstream_cpu_ms_per_req} err {s.errors} load {s.load:.2f}",
                    file=sys.stderr,
                )
                if t.name == "litellm" and t.proc is not None:
                    report.litellm_outbound += litellm_proxy.outbound_connections(
                        machine.tree(t.proc.pid)
                    )
    if args.probe > 0:
        _probe(args, report, targets)
    if args.stages > 0:
        timed = _gateway(procs, services, tmp, "base", up_port, timed=True)
        report.stages = _stages(timed, args.stages, args.gap_ms / 1000)


def _probe(args: argparse.Namespace, report: Report, targets: list[Target]) -> None:
    names = {"upstream-direct", "litellm"} | {
        "gateway" if v == "base" else f"gateway-{v}" for v in args.probe_variants.split(",") if v
    }
    chosen = [t for t in targets if t.name in names]
    for stream in (False, True):
        mode = "stream" if stream else "whole"
        probes = [ttfb.Probe(t.name, t.url, t.token) for t in chosen]
        report.loads.append(machine.loadavg())
        ttfb.run(probes, n=args.probe, gap_s=args.gap_ms / 1000, stream=stream)
        report.loads.append(machine.loadavg())
        base = next(p for p in probes if p.name == "upstream-direct")
        for p in probes:
            d: dict[str, Any] = {
                "target": p.name,
                "mode": mode,
                "n": args.probe,
                "gap_ms": args.gap_ms,
                "p50": ttfb.percentile(p.head_ms, 50),
                "p99": ttfb.percentile(p.head_ms, 99),
                "errors": p.errors,
            }
            if p is not base:
                d["added_p50"] = d["p50"] - ttfb.percentile(base.head_ms, 50)
                d["added_p99"] = d["p99"] - ttfb.percentile(base.head_ms, 99)
            if stream:
                d["first_p50"] = ttfb.percentile(p.first_ms, 50)
                if p is not base:
                    d["added_first_p50"] = d["first_p50"] - ttfb.percentile(base.first_ms, 50)
            report.ttfb[f"{p.name}/{mode}"] = d
            print(
                f"  probe {p.name:24} {mode:6} p50 {d['p50']:.3f} p99 {d['p99']:.3f} "
                f"added {d.get('added_p50')} / {d.get('added_p99')}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
