"""What bench/compare.py reads from /proc: the machine, its load, and each process tree's CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: Path) -> list[str]:
    stat = path.read_text()
    return stat[stat.rindex(")") + 2 :].split()  # fields from 3 (state) on


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(entry / "stat")[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants now (uvicorn workers, LiteLLM's helpers)."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of these processes (all threads), in clock ticks; gone ones count 0."""
    total = 0
    for pid in pids:
        try:
            f = _stat_fields(Path(f"/proc/{pid}/stat"))
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # fields 14 and 15 of proc(5)
    return total


def loadavg() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def facts() -> dict[str, str]:
    """The machine, for the report: CPU model, cores, memory, kernel, Python."""
    info = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    mhz = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("cpu MHz")), "?"
    )
    mem_kb = next(
        int(ln.split()[1])
        for ln in Path("/proc/meminfo").read_text().splitlines()
        if ln.startswith("MemTotal")
    )
    return {
        "cpu": f"{model} ({mhz} MHz)",
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
