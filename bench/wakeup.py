"""What an idle gap costs a round trip on this machine: loopback TCP ping-pong between two
processes, back to back and after idle gaps.

    .venv/bin/python bench/wakeup.py [-n 2000] [--gaps 0,1,5,20]

One process echoes 64 bytes on a loopback TCP connection (TCP_NODELAY, blocking sockets,
no event loop); the other sends, waits for the echo, sleeps `gap` ms, repeats. The round
trip's p50/p99 at gap 0 is the network stack's cost; the growth with the gap is what
waking an idle process (and, on a VM, an idle vCPU) adds. Every hop the gateway adds to
a request (its own receipt, the upstream's, its receipt of the answer) pays it once a
request arrives after idle time: the sequential TTFB probe (bench/ttfb.py) measures the
gateway in exactly that state.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time


def _echo(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(64):
        conn.sendall(data)
    os._exit(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", type=int, default=2000, help="round trips per gap")
    p.add_argument("--gaps", default="0,1,5,20", help="idle ms between round trips")
    a = p.parse_args()
    listener = socket.create_server(("127.0.0.1", 0))
    if os.fork() == 0:
        _echo(listener)
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"x" * 64
    print(f"loopback round trip, {a.n} per gap, load {os.getloadavg()[0]:.2f}")
    print("| idle gap ms | p50 µs | p90 µs | p99 µs |")
    print("|---:|---:|---:|---:|")
    for gap in (float(g) for g in a.gaps.split(",")):
        times = []
        for _ in range(a.n):
            t0 = time.perf_counter()
            client.sendall(payload)
            got = 0
            while got < len(payload):
                got += len(client.recv(64))
            times.append((time.perf_counter() - t0) * 1e6)
            if gap:
                time.sleep(gap / 1000)
        q = statistics.quantiles(times, n=100)
        print(f"| {gap:g} | {q[49]:.0f} | {q[89]:.0f} | {q[98]:.0f} |", flush=True)
    client.close()
    os.wait()


if __name__ == "__main__":
    main()
