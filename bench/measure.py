"""Timing and the measurement records every benchmark prints, one JSON object per line."""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def seconds(run: Callable[[], object]) -> float:
    """Wall-clock time of one call."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def record(name: str, value: float, unit: str, **details) -> dict:
    """One measurement; the load average tells whether other work shared the CPU while it was taken."""
    load = round(os.getloadavg()[0], 2)
    return {"name": name, "value": round(value, 3), "unit": unit, **details, "loadavg_1min": load}


def rate(name: str, items: int, samples: list[float], unit: str, **details) -> dict:
    """Items per second over the median of repeated timings of the same work (`items` each)."""
    median = statistics.median(samples)
    return record(name, items / median, unit, **details, median_s=round(median, 4),
                  samples_s=[round(sample, 4) for sample in samples])
