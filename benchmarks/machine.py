"""What the benchmark scripts print about the machine they ran on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable, Hashable

__all__ = ["cpu_name", "cpu_features", "interleaved_times", "load_average", "machine_line", "median_ms"]


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_features() -> str:
    """The vector ISA that decides these timings (AVX2 / AVX-512 / VNNI / AMX), from /proc/cpuinfo.

    int8 convolutions are only fast with VNNI, and oneDNN's float kernels differ between AVX2 and
    AVX-512 hosts, so tables from different hosts are not comparable without it.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((set(line.split(":", 1)[1].split()) for line in fh if line.startswith("flags")), set())
    except OSError:
        return "ISA unknown"
    known = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    present = [f for f in known if f in flags]
    return ", ".join(present) if present else "no AVX2"


def load_average() -> str:
    """The 1/5/15-minute load averages, or n/a."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    return f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs ({cpu_features()}), {platform.system()} {platform.release()}"


def interleaved_times(calls: dict[Hashable, Callable[[], object]], rounds: int, warmup: int) -> dict[Hashable, list[float]]:
    """Seconds per call of each of ``calls``, timed interleaved: every round calls each once (after
    ``warmup`` untimed rounds), so load from other processes spreads over all of them alike."""
    times: dict[Hashable, list[float]] = {k: [] for k in calls}
    for _ in range(warmup):
        for call in calls.values():
            call()
    for _ in range(rounds):
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - t0)
    return times


def median_ms(times: dict[Hashable, list[float]]) -> dict[Hashable, float]:
    """Median of each list, in milliseconds."""
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}
