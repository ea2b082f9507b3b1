"""Soak: a real gateway process under moderate mixed load; does it leak or fail?

    .venv/bin/python bench/soak.py --minutes 10

Starts the demo upstream and the gateway (bench/gateway_server.py, as `tac-gateway serve`
runs it: uvicorn, SQLite) as processes of their own on loopback, then sends for the given
time a steady mix of calls, each kind from its own worker:

| kind         | caller                  | expected                          |
|--------------|-------------------------|-----------------------------------|
| plain        | public client A         | 200                               |
| stream       | public client A         | 200, SSE ending with [DONE]       |
| denied       | public client A, `cyber`| 403 tier_too_low                  |
| rate_limited | public client B, faster than its requests_per_minute | 200 or 429 rate_limited |

Anything else (another status or code, a transport error, a stream without [DONE]) is an
error. Every `--sample-s` the gateway's resident memory (VmRSS) and thread count are read
from /proc/<pid>/status and its open files from /proc/<pid>/fd: nothing is added to the
gateway's API for this. Asyncio tasks are not observable from outside without a debug
route, so they are not measured. The verdict compares the window right after warm-up with
the last window: RSS growth under 10%, no more open files, no more threads than pool
churn explains (two), zero errors.
tests/soak/test_soak.py runs `run_soak` for 3 minutes as a marked CI step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.admin import ops
from gateway.db.engine import make_engine
from gateway.db.migrate import upgrade

BENCH = Path(__file__).resolve().parent
WAIT_S = 30.0  # bound for every start-up and shut-down wait
RSS_GROWTH_MAX = 0.10
# Worker threads come and go with the load (AnyIO's workers exit after 10 s idle, uvloop's
# resolver pool starts on demand), so the thread count moves by one or two either way; a
# leak grows past that. Open files have no such churn here: each load worker keeps one
# connection, so the file count must not grow at all.
THREAD_SLACK = 2
MESSAGES = [{"role": "user", "content": "hi"}]
# Requests a minute per (subject, model) for the public tier: client A's plain + stream
# calls stay under it; client B's calls go over it, so a part of them is refused with 429.
PUBLIC_RPM = 240
# Seconds between two calls of a worker: ~8 requests a second in all ("moderate").
PACE = {"plain": 0.5, "stream": 0.7, "denied": 1.0, "rate_limited": 0.15}


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss_kb: int
    threads: int
    fds: int


@dataclass
class SoakReport:
    seconds: float
    warmup_s: float
    outcomes: dict[str, int] = field(default_factory=dict)  # "kind status code" -> count
    errors: list[str] = field(default_factory=list)  # the first few, verbatim
    error_count: int = 0
    samples: list[Sample] = field(default_factory=list)
    rss_growth: float = 0.0
    fds_after_warmup: int = 0
    fds_at_end: int = 0
    threads_after_warmup: int = 0
    threads_at_end: int = 0

    def problems(self) -> list[str]:
        """What fails the soak; empty when it passed."""
        found = []
        if self.error_count:
            found.append(f"{self.error_count} errors, e.g. {self.errors[:3]}")
        if self.rss_growth >= RSS_GROWTH_MAX:
            found.append(f"RSS grew {self.rss_growth:.1%} after warm-up")
        if self.fds_at_end > self.fds_after_warmup:
            found.append(f"open files {self.fds_after_warmup} -> {self.fds_at_end}")
        if self.threads_at_end > self.threads_after_warmup + THREAD_SLACK:
            found.append(f"threads {self.threads_after_warmup} -> {self.threads_at_end}")
        for kind in PACE:
            if not any(k.startswith(kind + " ") for k in self.outcomes):
                found.append(f"no {kind} call completed")
        if not any(k.startswith("rate_limited 429") for k in self.outcomes):
            found.append("no call was rate-limited")
        return found


# --------------------------------------------------------------------------- /proc


def read_proc(pid: int) -> tuple[int, int, int]:
    """(VmRSS in kB, threads, open file descriptors) of `pid`, from /proc."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss_kb = int(status["VmRSS"].split()[0])
    threads = int(status["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss_kb, threads, fds


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited:\n{log.read_text()[-3000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up; log {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Target:
    base: str
    pid: int  # the gateway process
    token_a: str
    token_b: str


async def _seed(db_url: str, upstream: str) -> list[tuple[str, str]]:
    engine = make_engine(db_url)
    try:
        for name, floor in (("general", "public"), ("cyber", "critical")):
            await ops.add_model(
                engine, name=name, upstream_url=upstream, upstream_model=name, tier_floor=floor
            )
        org = await ops.create_org(engine, name="soak-public", status="verified")
        made = [await ops.create_client(engine, org_id=org.id, name=n) for n in ("a", "b")]
        return [(c.client_id, c.client_secret) for c in made]
    finally:
        await engine.dispose()


def _token(base: str, client: tuple[str, str]) -> str:
    reply = httpx.post(
        f"{base}/oauth/token", auth=client, data={"grant_type": "client_credentials"}, timeout=10
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


@contextmanager
def running_gateway(tmp: Path) -> Iterator[Target]:
    """The demo upstream and a seeded gateway, each its own process; both stopped after."""
    up_port, gw_port = _free_port(), _free_port()
    db_url = f"sqlite+aiosqlite:///{tmp / 'soak.db'}"
    upgrade(db_url)
    clients = asyncio.run(_seed(db_url, f"http://127.0.0.1:{up_port}/v1"))
    no_limit = {"tokens_per_minute": 0, "daily_tokens": 0, "in_flight": 0}
    settings = {
        "dev_mode": True,
        "database_url": db_url,
        "signing_key_file": str(tmp / "signing-key.pem"),
        "audit_log": {"key_file": str(tmp / "audit-log-key.pem")},
        "issuer": f"http://127.0.0.1:{gw_port}",
        "rate_limit": "1000000/minute",
        "token_endpoint_rate_limit": "1000/second",
        "tier_limits": {"public": {**no_limit, "requests_per_minute": PUBLIC_RPM}},
    }
    (tmp / "settings.json").write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACGW_")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with (tmp / "upstream.log").open("wb") as log:
            upstream = subprocess.Popen(
                [sys.executable, "-m", "gateway.demo.upstream", "--port", str(up_port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        procs.append(upstream)
        _wait_http(f"http://127.0.0.1:{up_port}/healthz", upstream, tmp / "upstream.log")
        with (tmp / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                [sys.executable, str(BENCH / "gateway_server.py"), str(tmp / "settings.json"),
                 str(gw_port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        procs.append(gateway)
        base = f"http://127.0.0.1:{gw_port}"
        _wait_http(f"{base}/healthz", gateway, tmp / "gateway.log")
        yield Target(base, gateway.pid, _token(base, clients[0]), _token(base, clients[1]))
    finally:
        for proc in reversed(procs):
            _stop(proc)


# --------------------------------------------------------------------------- load


def _expected(kind: str, status: int, code: str | None) -> bool:
    if kind == "denied":
        return (status, code) == (403, "tier_too_low")
    if kind == "rate_limited":
        return status == 200 or (status, code) == (429, "rate_limited")
    return status == 200


async def _call(client: httpx.AsyncClient, target: Target, kind: str) -> tuple[int, str | None]:
    """One call of `kind`; (status, error code). A broken stream raises."""
    token = target.token_b if kind == "rate_limited" else target.token_a
    body: dict[str, Any] = {
        "model": "cyber" if kind == "denied" else "general",
        "messages": MESSAGES,
        "max_tokens": 16,
    }
    headers = {"authorization": f"Bearer {token}"}
    url = f"{target.base}/v1/chat/completions"
    if kind == "stream":
        body["stream"] = True
        async with client.stream("POST", url, json=body, headers=headers) as reply:
            raw = await reply.aread()
            if reply.status_code == 200 and not raw.rstrip().endswith(b"data: [DONE]"):
                raise RuntimeError(f"stream did not end with [DONE]: {raw[-200:]!r}")
            return reply.status_code, None if reply.status_code == 200 else _code(raw)
    reply = await client.post(url, json=body, headers=headers)
    return reply.status_code, None if reply.status_code < 400 else _code(reply.content)


def _code(raw: bytes) -> str | None:
    try:
        return str(json.loads(raw)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


async def mixed_load(
    target: Target, *, seconds: float, warmup_s: float, sample_s: float
) -> SoakReport:
    """Run every kind of call for `seconds`, sampling the gateway process from /proc."""
    report = SoakReport(seconds=seconds, warmup_s=warmup_s)
    outcomes: Counter[str] = Counter()
    start = time.monotonic()
    end = start + seconds

    async def worker(kind: str) -> None:
        async with httpx.AsyncClient(timeout=30) as client:  # one keep-alive connection
            while (now := time.monotonic()) < end:
                try:
                    status, code = await _call(client, target, kind)
                except Exception as exc:  # an error of the soak, kept and counted
                    status, code = 0, f"{type(exc).__name__}: {exc}"
                outcomes[f"{kind} {status} {code}"] += 1
                if not _expected(kind, status, code):
                    report.error_count += 1
                    if len(report.errors) < 20:
                        report.errors.append(f"{kind}: {status} {code}")
                await asyncio.sleep(max(0.0, PACE[kind] - (time.monotonic() - now)))

    async def sampler() -> None:
        while time.monotonic() < end:
            rss, threads, fds = read_proc(target.pid)
            report.samples.append(Sample(round(time.monotonic() - start, 1), rss, threads, fds))
            await asyncio.sleep(sample_s)

    await asyncio.gather(sampler(), *(worker(kind) for kind in PACE))
    report.outcomes = dict(sorted(outcomes.items()))
    _judge(report)
    return report


def _judge(report: SoakReport) -> None:
    """Compare the window right after warm-up with the last window of the same length."""
    after = [s for s in report.samples if s.t >= report.warmup_s]
    if len(after) < 2:
        raise RuntimeError("too few samples after warm-up: lengthen the run")
    window = max(1, len(after) // 4)
    first, last = after[:window], after[-window:]
    base_rss = max(s.rss_kb for s in first)
    report.rss_growth = round((max(s.rss_kb for s in last) - base_rss) / base_rss, 4)
    # Peaks, not single samples: a call in flight holds a file for a moment.
    report.fds_after_warmup = max(s.fds for s in first)
    report.fds_at_end = max(s.fds for s in last)
    report.threads_after_warmup = max(s.threads for s in first)
    report.threads_at_end = max(s.threads for s in last)


def run_soak(*, seconds: float, warmup_s: float, sample_s: float = 2.0) -> SoakReport:
    """Start the processes, soak them, stop them; the report says what was seen."""
    with (
        tempfile.TemporaryDirectory(prefix="tacgw-soak-") as tmp,
        running_gateway(Path(tmp)) as target,
    ):
        return asyncio.run(
            mixed_load(target, seconds=seconds, warmup_s=warmup_s, sample_s=sample_s)
        )


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so that SIGTERM, too, stops the child processes


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds not judged")
    parser.add_argument("--sample-s", type=float, default=5.0)
    args = parser.parse_args()
    report = run_soak(seconds=args.minutes * 60, warmup_s=args.warmup, sample_s=args.sample_s)
    summary = {k: v for k, v in asdict(report).items() if k != "samples"}
    summary["rss_kb"] = [report.samples[0].rss_kb, report.samples[-1].rss_kb]
    summary["series"] = {  # every sample: seconds, RSS kB, threads, open files
        "t_rss_threads_fds": [[s.t, s.rss_kb, s.threads, s.fds] for s in report.samples]
    }
    print(json.dumps(summary, indent=2))
    if problems := report.problems():
        sys.exit("soak failed: " + "; ".join(problems))
    print("soak passed")


if __name__ == "__main__":
    main()
