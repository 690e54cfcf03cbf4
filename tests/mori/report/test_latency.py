"""Latency figures: exact linear-interpolation quantiles (DuckDB's ``quantile_cont``) and the
histogram the chart draws."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mori.report import latency

_SECONDS = arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.integers(0, 10_000_000).map(lambda ms: ms / 1000.0),
)


@settings(max_examples=150, deadline=None)
@given(_SECONDS)
def test_quantiles_are_pandas_grouped_quantiles(values: np.ndarray) -> None:
    """Bit for bit the figures of ``groupby(...).quantile`` (the per-run definition)."""
    grouped = pd.DataFrame({"k": 0, "s": values}).groupby("k")["s"]
    figures = latency.stats(values.copy())
    assert figures.images == len(values)
    assert figures.p50 == grouped.quantile(0.5).iloc[0]
    assert figures.p95 == grouped.quantile(0.95).iloc[0]
    assert figures.max == values.max()


def test_quantiles_agree_with_duckdb_quantile_cont() -> None:
    rng = np.random.default_rng(3)
    con = duckdb.connect()
    for n in (1, 2, 3, 20, 1001, 50_000):
        values = np.round(rng.lognormal(9.6, 0.6, n)) / 1000.0
        con.register("frame", pd.DataFrame({"s": values}))
        query = "SELECT quantile_cont(s, 0.5), quantile_cont(s, 0.95) FROM frame"
        p50, p95 = con.execute(query).fetchall()[0]
        con.unregister("frame")
        figures = latency.stats(values)
        assert figures.p50 == pytest.approx(p50, rel=1e-15)
        assert figures.p95 == pytest.approx(p95, rel=1e-15)


def test_no_values() -> None:
    assert latency.stats(np.empty(0)) == latency.LatencyStats(0, None, None, None)
    assert latency.histogram(np.empty(0)) == latency.Histogram((), ())
    stats, histogram = latency.overall([])
    assert stats.images == 0 and histogram.counts == ()


@pytest.mark.parametrize(
    "values",
    [
        np.array([5.0, 5.0, 5.0]),  # one distinct value: one bin around it
        np.array([1.0, 2.0, 2.0, 3.0]),  # three bins
        np.arange(1000) / 7.0,  # many: 40 bins
        np.concatenate([np.full(5000, 1.0), np.arange(100.0)]),  # the distinct ones come late
    ],
)
def test_histogram_is_what_the_chart_drew_from_every_value(values: np.ndarray) -> None:
    """``ax.hist(values, bins=min(40, distinct))`` bins exactly as this histogram."""
    bins = min(40, len(np.unique(values)))
    counts, edges = np.histogram(values, bins=bins)
    got = latency.histogram(values)
    assert got.counts == tuple(counts) and got.edges == tuple(edges)
    assert sum(got.counts) == len(values)


def test_days_are_over_all_their_images_not_an_average_of_runs() -> None:
    groups = {
        ("2026-03-01", "a"): np.array([10.0, 20.0, 20.0, 60.0]),
        ("2026-03-01", "b"): np.array([1.0]),
        ("2026-03-02", "c"): np.array([5.0, 5.0, 5.0]),
    }
    runs = latency.by_group({k: v.copy() for k, v in groups.items()})
    assert runs.loc[("2026-03-01", "a"), "latency_p50_seconds"] == 20.0
    assert runs.loc[("2026-03-01", "a"), "latency_p95_seconds"] == pytest.approx(54.0)
    assert runs.loc[("2026-03-01", "b"), "latency_max_seconds"] == 1.0
    days = latency.by_day(groups)
    assert list(days.index) == ["2026-03-01", "2026-03-02"]
    assert days.loc["2026-03-01", "latency_images"] == 5
    assert days.loc["2026-03-01", "latency_p50_seconds"] == 20.0  # of 1, 10, 20, 20, 60
    stats, histogram = latency.overall(groups.values())
    assert stats.images == 8 and stats.p50 == 7.5 and stats.max == 60.0
    assert sum(histogram.counts) == 8
