"""The report's charts, as PNG bytes (matplotlib's Agg canvas; no pyplot, no display).

Each chart is drawn on its own :class:`~matplotlib.figure.Figure`, so charts can be made from
any thread. Text from the data (error codes) is drawn literally: mathtext is switched off, so a
``$`` in a code cannot break or alter a chart.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from mori.report.summary import STATUSES, Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: What to install when matplotlib (the ``report`` extra) is missing.
INSTALL_HINT = "the report's charts need matplotlib: pip install 'mori-pipeline[report]'"

COLOURS = {
    "processed": "#2e7d32",
    "skipped": "#90a4ae",
    "failed": "#c62828",
    "pending": "#f9a825",
    "api_requests": "#1565c0",
    "api_retries": "#ef6c00",
    "rate_limited": "#6a1b9a",
    "latency": "#00838f",
}
SIZE = (9.0, 4.5)
DPI = 100
MAX_CODES = 15
CHARTS = ("daily_volume", "failure_codes", "latency", "api_usage")
TITLES = {
    "daily_volume": "Images per day, by outcome",
    "failure_codes": "Failed rows by error code",
    "latency": "Create-to-complete time of processed images",
    "api_usage": "MORI API requests per day",
}


def render_all(report: Report) -> dict[str, bytes]:
    """Every chart of the report: ``{"daily_volume": png, ...}`` (file name without ``.png``)."""
    drawers: dict[str, Callable[[Axes, Report], None]] = {
        "daily_volume": draw_daily_volume,
        "failure_codes": draw_failure_codes,
        "latency": draw_latency,
        "api_usage": draw_api_usage,
    }
    return {name: render(drawers[name], report, TITLES[name]) for name in CHARTS}


def render(draw: Callable[[Axes, Report], None], report: Report, title: str) -> bytes:
    """One chart as PNG bytes."""
    try:
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    with mpl.rc_context({"text.parse_math": False, "font.size": 10}):
        fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        draw(ax, report)
        ax.set_title(title)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _integers() -> Any:
    """A tick locator at whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _nothing(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _days(report: Report) -> pd.DataFrame:
    daily = report.per_day
    return daily.assign(label=daily["run_date"].astype(str))


def draw_daily_volume(ax: Axes, report: Report) -> None:
    """Stacked bars: processed, skipped, failed and pending rows per ``run_date``."""
    daily = _days(report)
    if daily.empty:
        _nothing(ax, "No runs in this period")
        return
    positions = list(range(len(daily)))
    bottom = [0.0] * len(daily)
    for status in STATUSES:
        values = [float(v) for v in daily[status].fillna(0)]
        ax.bar(positions, values, bottom=bottom, color=COLOURS[status], label=status, width=0.7)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _date_axis(ax, positions, list(daily["label"]))
    ax.yaxis.set_major_locator(_integers())
    ax.set_ylabel("rows")
    ax.legend(loc="upper left", fontsize=8)


def _date_axis(ax: Axes, positions: list[int], labels: list[str]) -> None:
    step = max(1, len(labels) // 20)
    ax.set_xticks(positions[::step], labels=labels[::step], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(labels) - 0.4)


def draw_failure_codes(ax: Axes, report: Report) -> None:
    """Horizontal bars: failed rows per error code over the whole period (most frequent on top)."""
    failures = report.failures
    failed = failures[(failures["grain"] == "day") & (failures["status"] == "failed")]
    if failed.empty:
        _nothing(ax, "No failed rows in this period")
        return
    codes = failed.groupby("error_code")["rows"].sum().sort_values(ascending=False)
    if len(codes) > MAX_CODES:
        rest = codes.iloc[MAX_CODES - 1 :].sum()
        codes = pd.concat([codes.iloc[: MAX_CODES - 1], pd.Series({"(other codes)": rest})])
    labels = [str(c) for c in codes.index][::-1]
    values = [float(v) for v in codes.to_numpy()][::-1]
    bars = ax.barh(range(len(values)), values, color=COLOURS["failed"])
    ax.set_yticks(range(len(values)), labels=labels)
    ax.bar_label(bars, labels=[str(int(v)) for v in values], padding=3, fontsize=8)
    ax.xaxis.set_major_locator(_integers())
    ax.set_xlabel("failed rows")
    ax.margins(x=0.1)


def draw_latency(ax: Axes, report: Report) -> None:
    """Histogram of create-to-complete seconds, with the p50 and p95 marked."""
    counts, edges = report.histogram.counts, report.histogram.edges
    if not counts:
        _nothing(ax, "No image was processed in this period")
        return
    # the bins are counted already: one weighted value per bin draws the same bars
    ax.hist(edges[:-1], bins=edges, weights=counts, color=COLOURS["latency"], edgecolor="white")
    for q, value, style in ((0.5, report.latency.p50, "--"), (0.95, report.latency.p95, ":")):
        if value is None:
            continue
        label = f"p{round(q * 100)} = {value:.2f} s"
        ax.axvline(value, color="#263238", linestyle=style, linewidth=1.5, label=label)
    ax.set_xlabel("seconds from order created to completed")
    ax.yaxis.set_major_locator(_integers())
    ax.set_ylabel("images")
    ax.legend(loc="upper right", fontsize=8)


def draw_api_usage(ax: Axes, report: Report) -> None:
    """Grouped bars: API requests, retries and rate-limited answers per ``run_date``."""
    daily = _days(report)
    if daily.empty or daily["api_requests"].isna().all():
        _nothing(ax, "No API usage recorded in this period")
        return
    positions = list(range(len(daily)))
    width = 0.27
    for i, col in enumerate(("api_requests", "api_retries", "rate_limited")):
        values = [float(v) for v in daily[col].fillna(0)]
        shifted = [p + (i - 1) * width for p in positions]
        ax.bar(shifted, values, width=width, color=COLOURS[col], label=col.replace("_", " "))
    _date_axis(ax, positions, list(daily["label"]))
    ax.yaxis.set_major_locator(_integers())
    ax.set_ylabel("requests")
    ax.legend(loc="upper left", fontsize=8)
