"""py-spy for bench/run.py: sample a running gateway from outside, and summarise the samples.

py-spy (a sampling profiler written in Rust, from PyPI) attaches to the gateway's pid and
reads its stacks without touching the process: no restart, no in-process overhead, all
threads, and by default only samples where a thread is on the CPU (`--idle` is off), so
the shares below are shares of the gateway's CPU time. It lives in its own venv under
~/.cache/tacgw, like LiteLLM: it is a tool, not a dependency.

    .venv/bin/python bench/run.py --concurrency 16 --duration 15 --profile py-spy
    .venv/bin/python bench/pyspy.py bench/results/<stamp>-aiohttp.pyspy.txt   # summary again
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

VERSION = "0.4.3"
VENV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tacgw" / (f"py-spy-{VERSION}")
)


def ensure() -> Path:
    """The py-spy executable, installed into its own venv on first use."""
    exe = VENV / "bin" / "py-spy"
    if not exe.exists():
        print(f"installing py-spy=={VERSION} into {VENV} (one-off)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"py-spy=={VERSION}",
            ],
            check=True,
            timeout=600,
        )
    return exe


def record(pid: int, out: Path, duration_s: float, rate: int = 250) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `duration_s` into `out` (collapsed stacks); returns at once."""
    return subprocess.Popen(
        [
            str(ensure()),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--duration",
            str(max(1, round(duration_s))),
            "--format",
            "raw",
            "--output",
            str(out),
            "--threads",
            "--gil",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def _frames(stack: str) -> list[str]:
    # "thread (0x..);fn (path/file.py:12);..." → function and file, line numbers dropped.
    out = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        path = where.rsplit(":", 1)[0].rstrip(")")
        out.append(f"{name} ({_short(path)})" if path else name)
    return out


def _short(path: str) -> str:
    for marker in ("site-packages/", "/gateway/", "python3.11/"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("gateway/" + tail) if marker == "/gateway/" else tail
    return path


def summary(path: Path, top: int = 30) -> str:
    """Top functions by own samples and by inclusive samples, and the share per package."""
    self_count: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    package: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not n_text.isdigit():
            continue
        n = int(n_text)
        total += n
        frames = _frames(stack)
        self_count[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        leaf = frames[-1]
        pkg = leaf.rsplit("(", 1)[-1].split("/")[0] if "(" in leaf else leaf
        package[pkg] += n
    if not total:
        return "no samples"

    def table(title: str, counts: Counter[str]) -> str:
        rows = [f"{100 * c / total:5.1f}%  {name}" for name, c in counts.most_common(top)]
        return f"{title}\n" + "\n".join(rows)

    return "\n\n".join(
        [
            f"{total} samples on CPU",
            table("own time (leaf frame):", self_count),
            table("own time by package of the leaf frame:", package),
            table("inclusive:", incl),
        ]
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Summarise a py-spy raw (collapsed) profile.")
    p.add_argument("raw", type=Path)
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()
    print(summary(a.raw, a.top))
