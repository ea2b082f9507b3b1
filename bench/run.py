"""Benchmark: the gateway against the direct demo upstream, with wrk on loopback.

Reports requests/s, p50/p99 latency and CPU ms per request (gateway process and upstream
process, measured separately from /proc) at each concurrency. See bench/README.md.

    .venv/bin/python bench/run.py --transport aiohttp --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import machine  # bench/machine.py: this script's directory is on sys.path

from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade
from gateway.demo.seed import DemoClient, seed

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk_post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WAIT_S = 10.0  # bound for every start-up and shut-down wait


@dataclass
class Result:
    scenario: str  # "upstream-direct" | "gateway", plus "-sse" for streaming
    target: str
    concurrency: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: dict[str, int]
    gateway_cpu_ms_per_req: float | None
    upstream_cpu_ms_per_req: float
    wrk_cpu_ms_per_req: float
    # gateway CPU ms/req: the main (event-loop) thread vs. all others (aiosqlite workers...)
    gateway_threads_ms_per_req: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- processes


class Procs:
    """Every child process, terminated on exit (also on Ctrl-C / SIGTERM)."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, env: dict[str, str] | None = None, log: Path) -> Any:
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # our Ctrl-C handling decides the shutdown order
            )
        self.children.append(proc)
        return proc

    def stop(
        self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait_s: float = WAIT_S
    ) -> None:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=WAIT_S)
        if proc in self.children:
            self.children.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.children)):
            self.stop(proc)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S * 2
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"process for {url} exited early:\n{log.read_text()[-3000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    sys.exit(f"{url} did not come up; log {log}")


# --------------------------------------------------------------------------- CPU from /proc


def _cpu_ticks(pid: int) -> int:
    """utime + stime of the process and its descendants (a server's worker processes),
    all threads, in clock ticks."""
    return machine.cpu_ticks(machine.tree(pid))


def _main_thread_ticks(pid: int) -> int:
    """utime + stime of the main thread (the event loop), in clock ticks."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


# --------------------------------------------------------------------------- wrk


def _run_wrk(
    url: str, *, conns: int, threads: int, duration_s: float, token: str, stream: bool
) -> tuple[dict[str, Any], float]:
    """Run wrk; return its BENCH_JSON summary and wrk's own CPU seconds."""
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_STREAM": "1" if stream else "0"}
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{duration_s:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + duration_s + 30
        rusage = None
        try:
            while time.monotonic() < deadline:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.05)
            else:
                sys.exit("wrk did not finish in time")
        finally:  # also on Ctrl-C: never leave wrk running
            if proc.returncode is None:
                proc.kill()
                proc.wait(timeout=WAIT_S)
        out.seek(0)
        text = out.read().decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None or rusage is None:
        sys.exit(f"wrk failed ({proc.returncode}):\n{text}")
    return json.loads(line.removeprefix("BENCH_JSON ")), rusage.ru_utime + rusage.ru_stime


def measure(
    scenario: str,
    url: str,
    *,
    conns: int,
    duration_s: float,
    token: str,
    stream: bool,
    upstream_pid: int,
    gateway_pid: int | None,
) -> Result:
    threads = 1 if conns == 1 else 2
    up0 = _cpu_ticks(upstream_pid)
    gw0 = _cpu_ticks(gateway_pid) if gateway_pid else 0
    main0 = _main_thread_ticks(gateway_pid) if gateway_pid else 0
    summary, wrk_cpu_s = _run_wrk(
        url, conns=conns, threads=threads, duration_s=duration_s, token=token, stream=stream
    )
    up1 = _cpu_ticks(upstream_pid)
    gw1 = _cpu_ticks(gateway_pid) if gateway_pid else 0
    main1 = _main_thread_ticks(gateway_pid) if gateway_pid else 0
    n = max(1, summary["requests"])

    def per_req(ticks: int) -> float:
        return round(ticks / CLK_TCK * 1000 / n, 3)

    elapsed = summary["duration_us"] / 1e6
    return Result(
        scenario=scenario,
        target=url,
        concurrency=conns,
        threads=threads,
        duration_s=round(elapsed, 3),
        requests=summary["requests"],
        rps=round(summary["requests"] / elapsed, 1),
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=summary["errors"],
        gateway_cpu_ms_per_req=per_req(gw1 - gw0) if gateway_pid else None,
        upstream_cpu_ms_per_req=per_req(up1 - up0),
        wrk_cpu_ms_per_req=round(wrk_cpu_s * 1000 / n, 3),
        gateway_threads_ms_per_req=(
            {
                "event_loop": per_req(main1 - main0),
                "other_threads": per_req((gw1 - gw0) - (main1 - main0)),
            }
            if gateway_pid
            else {}
        ),
    )


# --------------------------------------------------------------------------- setup


@dataclass
class Env:
    tmp: Path
    upstream_port: int
    gateway_port: int
    settings_file: Path
    clients: list[DemoClient]


def _prepare(tmp: Path, args: argparse.Namespace) -> Env:
    up_port, gw_port = _free_port(), _free_port()
    # An empty database of the caller's (e.g. PostgreSQL), or a fresh SQLite file.
    db_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    upgrade(db_url)

    async def _seed() -> list[DemoClient]:
        engine = make_engine(db_url)
        try:
            return await seed(engine, upstream_url=f"http://127.0.0.1:{up_port}/v1")
        finally:
            await engine.dispose()

    clients = asyncio.run(_seed())
    settings = {
        "dev_mode": True,
        "database_url": db_url,
        "signing_key_file": str(tmp / "signing-key.pem"),
        "audit_log": {"key_file": str(tmp / "audit-log-key.pem")},
        "issuer": f"http://127.0.0.1:{gw_port}",
        "rate_limit": "1000000/minute",
        "rate_limit_storage": args.rate_limit_storage,
        "tier_limits": _tier_limits(args.tier_limits),
        "sqlite_synchronous": args.sqlite_synchronous,
        "upstream": {"transport": args.transport},
    }
    settings_file = tmp / "settings.json"
    settings_file.write_text(json.dumps(settings))
    return Env(tmp, up_port, gw_port, settings_file, clients)


def _tier_limits(mode: str) -> dict[str, dict[str, int]]:
    """ "on": every limit of every tier counted (requests, tokens, daily budget, in-flight),
    none ever reached; "off": none counted (usage is still read and recorded)."""
    if mode == "off":
        values = {"requests_per_minute": 0, "tokens_per_minute": 0, "daily_tokens": 0}
        return {t: {**values, "in_flight": 0} for t in ("public", "verified", "critical")}
    values = {
        "requests_per_minute": 100_000_000,
        "tokens_per_minute": 10**12,
        "daily_tokens": 10**15,
        "in_flight": 100_000,
    }
    return {t: dict(values) for t in ("public", "verified", "critical")}


def _start_gateway(
    procs: Procs,
    env: Env,
    *,
    profile: str = "",
    profile_out: Path | None = None,
    workers: int = 1,
) -> subprocess.Popen[bytes]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TACGW_")}
    child_env["BENCH_WORKERS"] = str(workers)
    if profile:
        child_env["BENCH_PROFILE"] = profile
        child_env["BENCH_PROFILE_OUT"] = str(profile_out)
    log = env.tmp / f"gateway{'-' + profile if profile else ''}.log"
    proc = procs.start(
        [
            sys.executable,
            str(BENCH / "gateway_server.py"),
            str(env.settings_file),
            str(env.gateway_port),
        ],
        env=child_env,
        log=log,
    )
    _wait_http(f"http://127.0.0.1:{env.gateway_port}/healthz", proc, log)
    return proc


def _token(env: Env) -> str:
    public = next(c for c in env.clients if c.tier == "public")
    r = httpx.post(
        f"http://127.0.0.1:{env.gateway_port}/oauth/token",
        auth=(public.client_id, public.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def _check(url: str, token: str, stream: bool) -> None:
    """One request by hand, so a broken setup fails loudly instead of benchmarking 401s."""
    body: dict[str, Any] = {
        "model": "demo-general",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
    }
    if stream:
        body["stream"] = True
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = httpx.post(url, json=body, headers=headers, timeout=10)
    if r.status_code != 200:
        sys.exit(f"sanity request to {url} failed: {r.status_code} {r.text[:500]}")


# --------------------------------------------------------------------------- report


def _table(results: list[Result]) -> str:
    head = (
        "| scenario | conc | req/s | p50 ms | p99 ms | gateway CPU ms/req "
        "| upstream CPU ms/req | wrk CPU ms/req | errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for r in results:
        gw = "-" if r.gateway_cpu_ms_per_req is None else f"{r.gateway_cpu_ms_per_req:.3f}"
        errs = sum(r.errors.values())
        rows.append(
            f"| {r.scenario} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {gw} | {r.upstream_cpu_ms_per_req:.3f} | "
            f"{r.wrk_cpu_ms_per_req:.3f} | {errs} |"
        )
    return head + "\n".join(rows) + "\n"


@contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="tacgw-bench-"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--transport",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="upstream.transport: aiohttp's session for /v1 calls, or httpx's own transport",
    )
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    p.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured c16 load")
    p.add_argument(
        "--concurrency", default="1,16", help="comma-separated connection counts (default 1,16)"
    )
    p.add_argument("--stream", action="store_true", help="also run the SSE streaming scenario")
    p.add_argument(
        "--sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="the gateway's setting (FULL is the shipped default: audit fsync per request)",
    )
    p.add_argument(
        "--profile",
        choices=["py-spy", "pyinstrument", "cprofile"],
        help="afterwards, profile the gateway at c16 in a separate run (numbers not in the table)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (DB, logs)")
    p.add_argument(
        "--database-url",
        help="an EMPTY database to use instead of a fresh SQLite file, e.g. "
        "postgresql://postgres@127.0.0.1:5432/bench (it is migrated and seeded)",
    )
    p.add_argument(
        "--rate-limit-storage",
        default="memory://",
        help="limits storage, e.g. redis://127.0.0.1:6379/0 (the replicated setup)",
    )
    p.add_argument(
        "--tier-limits",
        choices=["on", "off"],
        default="on",
        help="on: every tier limit counted but never reached (the cost of limits); off: none",
    )
    p.add_argument("--results", type=Path, default=BENCH / "results")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (Debian: apt-get install wrk)")
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    # SIGINT explicitly too: a backgrounded process may start with SIGINT ignored.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    procs = Procs()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    profile_files: list[str] = []
    try:
        with _workdir(args.keep) as tmp:
            env = _prepare(tmp, args)
            up_log = tmp / "upstream.log"
            upstream = procs.start(
                [sys.executable, "-m", "gateway.demo.upstream", "--port", str(env.upstream_port)],
                log=up_log,
            )
            _wait_http(f"http://127.0.0.1:{env.upstream_port}/healthz", upstream, up_log)
            gateway = _start_gateway(procs, env)
            token = _token(env)
            direct = f"http://127.0.0.1:{env.upstream_port}/v1/chat/completions"
            via_gw = f"http://127.0.0.1:{env.gateway_port}/v1/chat/completions"
            print(
                f"transport={args.transport} duration={args.duration:g}s "
                f"sqlite_synchronous={args.sqlite_synchronous} cpus={os.cpu_count()} "
                f"tmp={tmp}",
                file=sys.stderr,
            )
            for stream in [False, True] if args.stream else [False]:
                suffix = "-sse" if stream else ""
                for name, url, tok, gw_pid in (
                    ("upstream-direct", direct, "", None),
                    ("gateway", via_gw, token, gateway.pid),
                ):
                    _check(url, tok, stream)
                    if args.warmup > 0:
                        _run_wrk(
                            url,
                            conns=16,
                            threads=2,
                            duration_s=args.warmup,
                            token=tok,
                            stream=stream,
                        )
                    for conns in concurrencies:
                        r = measure(
                            name + suffix,
                            url,
                            conns=conns,
                            duration_s=args.duration,
                            token=tok,
                            stream=stream,
                            upstream_pid=upstream.pid,
                            gateway_pid=gw_pid,
                        )
                        results.append(r)
                        print(
                            f"  {r.scenario:20} c{conns:<3} {r.rps:8,.0f} req/s "
                            f"p50 {r.p50_ms:6.2f} ms p99 {r.p99_ms:6.2f} ms "
                            f"gw {r.gateway_cpu_ms_per_req} up {r.upstream_cpu_ms_per_req} "
                            f"ms CPU/req",
                            file=sys.stderr,
                        )
            if args.profile == "py-spy":
                # From outside, on the running gateway: no restart, no in-process overhead.
                import pyspy

                raw = args.results / f"{stamp}-{args.transport}.pyspy.txt"
                sampler = pyspy.record(gateway.pid, raw, args.duration)
                prof = measure(
                    "gateway-profiled",
                    via_gw,
                    conns=16,
                    duration_s=args.duration,
                    token=token,
                    stream=False,
                    upstream_pid=upstream.pid,
                    gateway_pid=gateway.pid,
                )
                sampler.wait(timeout=60)
                summary = raw.with_suffix(".summary.txt")
                summary.write_text(pyspy.summary(raw))
                profile_files = [str(raw), str(summary)]
                print(
                    f"profiled run: {prof.rps:,.0f} req/s, gateway "
                    f"{prof.gateway_cpu_ms_per_req} ms CPU/req\n{summary.read_text()[:3000]}",
                    file=sys.stderr,
                )
            elif args.profile:
                procs.stop(gateway)
                prefix = args.results / f"{stamp}-{args.transport}"
                gateway = _start_gateway(procs, env, profile=args.profile, profile_out=prefix)
                _run_wrk(via_gw, conns=16, threads=2, duration_s=1, token=token, stream=False)
                prof = measure(
                    "gateway-profiled",
                    via_gw,
                    conns=16,
                    duration_s=args.duration,
                    token=token,
                    stream=False,
                    upstream_pid=upstream.pid,
                    gateway_pid=gateway.pid,
                )
                # SIGINT: uvicorn returns and the profile is written (HTML rendering takes a while)
                procs.stop(gateway, signal.SIGINT, wait_s=60)
                profile_files = sorted(
                    str(p) for p in args.results.glob(f"{prefix.name}.*") if p.is_file()
                )
                print(
                    f"profiled run (not comparable: profiler overhead): {prof.rps:,.0f} req/s, "
                    f"gateway {prof.gateway_cpu_ms_per_req} ms CPU/req, threads "
                    f"{prof.gateway_threads_ms_per_req}\nprofile: {profile_files}",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        print("interrupted; stopping processes", file=sys.stderr)
    finally:
        procs.stop_all()
    if not results:
        sys.exit(1)
    table = _table(results)
    print(
        f"\ntransport={args.transport}, wrk -d{args.duration:g}s on loopback, "
        f"{os.cpu_count()} CPUs shared by wrk, upstream and gateway\n"
    )
    print(table)
    out = args.results / f"{stamp}-{args.transport}.json"
    out.write_text(
        json.dumps(
            {
                "timestamp": stamp,
                "argv": sys.argv,
                "transport": args.transport,
                "duration_s": args.duration,
                "sqlite_synchronous": args.sqlite_synchronous,
                "cpus": os.cpu_count(),
                "results": [asdict(r) for r in results],
                "profile_files": profile_files,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
