"""What the benchmark scripts print about the machine they ran on, and their interleaved timer:
the package's own (:mod:`litefuse.bench`, behind ``litefuse bench``), re-exported for the scripts."""

from __future__ import annotations

from litefuse.bench import cpu_features, cpu_name, interleaved_times, load_average, machine_line, median_ms

__all__ = ["cpu_name", "cpu_features", "interleaved_times", "load_average", "machine_line", "median_ms"]
