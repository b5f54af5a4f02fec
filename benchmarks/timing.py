"""Shared timing helper of the benchmark scripts (run them from the repository root: python benchmarks/bench_*.py)."""

import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls: timings on shared machines vary by about ±30 %, medians less."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
