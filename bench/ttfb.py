"""The sequential probe of bench/compare.py: time to first byte, one request at a time.

A lone request after an idle gap is what an interactive caller sees; it pays every wake-up,
thread hand-off and timer the pipeline waits on, which a loaded benchmark hides. Each
target keeps one keep-alive connection (as an SDK client does); the targets take turns in
a shuffled order, each request followed by `gap_s` of idle, so that slow drifts of the
machine's load touch every target alike.

Measured per request, from sending it: `head` — the status line and headers are in (the
time to first byte); `first` — for a stream, the first SSE chunk is in too; `whole` — the
last byte. A target's *added* time is its percentile minus the direct upstream's.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

BODY = {
    "model": "demo-general",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Say hello in five words."}],
}


@dataclass
class Probe:
    name: str
    url: str
    token: str
    head_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    errors: int = 0


def _conn(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)


def _one(conn: http.client.HTTPConnection, probe: Probe, body: bytes, stream: bool) -> None:
    headers = {"content-type": "application/json", "user-agent": "tacgw-bench-ttfb"}
    if probe.token:
        headers["authorization"] = f"Bearer {probe.token}"
    path = urlsplit(probe.url).path
    t0 = time.perf_counter()
    conn.request("POST", path, body, headers)
    resp = conn.getresponse()
    head = time.perf_counter()
    first = resp.read1(65536) if stream else b""
    t_first = time.perf_counter()
    resp.read()
    if resp.status != 200 or (stream and not first):
        probe.errors += 1
        return
    probe.head_ms.append((head - t0) * 1000)
    if stream:
        probe.first_ms.append((t_first - t0) * 1000)


def run(probes: list[Probe], *, n: int, gap_s: float, stream: bool, seed: int = 1) -> None:
    """`n` requests per probe, sequential, interleaved, `gap_s` of idle after each."""
    body = json.dumps({**BODY, "stream": True} if stream else BODY).encode()
    conns = {p.name: _conn(p.url) for p in probes}
    rng = random.Random(seed)
    try:
        for p in probes:  # one unmeasured request each: connections open, caches warm
            _one(conns[p.name], Probe(p.name, p.url, p.token), body, stream)
            time.sleep(gap_s)
        for _ in range(n):
            order = probes[:]
            rng.shuffle(order)
            for p in order:
                try:
                    _one(conns[p.name], p, body, stream)
                except (OSError, http.client.HTTPException):
                    p.errors += 1
                    conns[p.name].close()
                    conns[p.name] = _conn(p.url)
                time.sleep(gap_s)
    finally:
        for c in conns.values():
            c.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return values[0] if q <= 0 else cuts[min(98, max(0, round(q) - 1))]
