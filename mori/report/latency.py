"""Create-to-complete latency figures from arrays of seconds: exact quantiles and a histogram.

Quantiles use linear interpolation between the two nearest ranks, ``v[lo] + (v[hi] - v[lo]) *
frac`` at rank ``q * (n - 1)``, exactly as DuckDB's ``quantile_cont`` and pandas' grouped
``quantile``. They are exact: every value of the group is kept (8 bytes per processed image),
and only the ranks needed are put in place (``numpy.partition``), no full sort.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

HISTOGRAM_BINS = 40
QUANTILES = (0.5, 0.95)
_SAMPLE = 4096


@dataclass(frozen=True)
class LatencyStats:
    """How many latencies a group has, and their p50, p95 and maximum (``None`` when none)."""

    images: int = 0
    p50: float | None = None
    p95: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Histogram:
    """Counts per bin and the bins' edges (one more edge than counts), as ``numpy.histogram``."""

    counts: tuple[int, ...] = ()
    edges: tuple[float, ...] = ()


def stats(values: np.ndarray) -> LatencyStats:
    """The figures of ``values`` (float seconds; reordered in place)."""
    n = len(values)
    if n == 0:
        return LatencyStats()
    ranks = [q * (n - 1) for q in QUANTILES]
    kth = sorted(
        {n - 1} | {i for r in ranks for i in (math.floor(r), min(math.floor(r) + 1, n - 1))}
    )
    values.partition(kth)
    p50, p95 = (_interpolate(values, r) for r in ranks)
    return LatencyStats(n, p50, p95, float(values[n - 1]))


def _interpolate(partitioned: np.ndarray, rank: float) -> float:
    lo = math.floor(rank)
    hi = min(lo + 1, len(partitioned) - 1)
    low, high = partitioned[lo], partitioned[hi]
    return float(low + (high - low) * (rank - lo))


def histogram(values: np.ndarray) -> Histogram:
    """``numpy.histogram`` of ``values`` with one bin per distinct value, at most 40 bins."""
    if len(values) == 0:
        return Histogram()
    bins = max(1, min(HISTOGRAM_BINS, distinct_up_to(values, HISTOGRAM_BINS)))
    counts, edges = np.histogram(values, bins=bins)
    return Histogram(tuple(int(c) for c in counts), tuple(float(e) for e in edges))


def distinct_up_to(values: np.ndarray, limit: int) -> int:
    """The number of distinct values, or any number ``>= limit`` when there are that many."""
    seen = len(np.unique(values[:_SAMPLE]))
    return seen if seen >= limit else len(np.unique(values))


def by_group(groups: Mapping[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """One row of figures per ``(run_date, run_id)`` with latencies (index: the two keys)."""
    rows = [(*key, *_row(stats(values))) for key, values in groups.items()]
    return _frame(rows, ["run_date", "run_id"])


def by_day(groups: Mapping[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """One row of figures per ``run_date``, over all of the day's latencies (index: the day)."""
    days: dict[str, list[np.ndarray]] = {}
    for (day, _), values in groups.items():
        days.setdefault(day, []).append(values)
    rows = [(day, *_row(stats(np.concatenate(parts)))) for day, parts in days.items()]
    return _frame(rows, ["run_date"])


def overall(groups: Iterable[np.ndarray]) -> tuple[LatencyStats, Histogram]:
    """The figures and histogram over every latency of the period."""
    values = np.concatenate([np.empty(0), *groups])
    return stats(values), histogram(values)


def _row(figures: LatencyStats) -> tuple[int, float | None, float | None, float | None]:
    return figures.images, figures.p50, figures.p95, figures.max


_COLUMNS = ["latency_images", "latency_p50_seconds", "latency_p95_seconds", "latency_max_seconds"]


def _frame(rows: Sequence[tuple[object, ...]], keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*keys, *_COLUMNS])
    for col in _COLUMNS[1:]:
        frame[col] = frame[col].astype("float64")
    return frame.set_index(keys)
