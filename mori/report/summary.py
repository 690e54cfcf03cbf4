"""The report's figures: per run and per day, from the aggregates of one pass over the audit.

Counts come from ``images`` (one row per manifest row per run); a run with a ``runs`` row but no
``images`` rows falls back to the ``runs`` totals. Latency is per *processed* image of the run,
``completed_at - created_at`` of its order, in seconds; p50/p95 use linear interpolation (as
DuckDB ``quantile_cont``, see :mod:`mori.report.latency`). API usage comes from ``runs``; it is
null for a run without a ``runs`` row. A day's figures are computed from its rows, not averaged
over runs. The aggregates (:mod:`mori.report.scan`) are small, so pandas does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from mori.report import latency
from mori.report.latency import Histogram, LatencyStats
from mori.report.load import AuditData
from mori.report.rows import FailedRows
from mori.report.scan import UNKNOWN, Aggregates, scan_audit

STATUSES = ("processed", "skipped", "failed", "pending")
KEY = ["run_date", "run_id"]
NO_CODE = "(no code)"
TS = pa.timestamp("ms", tz="UTC")

SUMMARY_SCHEMA = pa.schema(
    [
        ("grain", pa.string()),
        ("run_date", pa.date32()),
        ("run_id", pa.string()),
        ("runs", pa.int64()),
        ("manifest_uri", pa.string()),
        ("started_at", TS),
        ("finished_at", TS),
        ("wall_seconds", pa.float64()),
        ("images", pa.int64()),
        ("processed", pa.int64()),
        ("skipped", pa.int64()),
        ("failed", pa.int64()),
        ("pending", pa.int64()),
        ("failed_by_code", pa.map_(pa.string(), pa.int64())),
        ("orders", pa.int64()),
        ("bytes_processed", pa.int64()),
        ("latency_images", pa.int64()),
        ("latency_p50_seconds", pa.float64()),
        ("latency_p95_seconds", pa.float64()),
        ("latency_max_seconds", pa.float64()),
        ("api_requests", pa.int64()),
        ("api_retries", pa.int64()),
        ("rate_limited", pa.int64()),
    ]
)

FAILURES_SCHEMA = pa.schema(
    [
        ("grain", pa.string()),
        ("run_date", pa.date32()),
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("error_code", pa.string()),
        ("rows", pa.int64()),
    ]
)

_COUNTS = ("images", *STATUSES)
_API = ("api_requests", "api_retries", "rate_limited")


@dataclass
class Report:
    """Everything the report shows: the summary, failures, latencies and the failed rows."""

    audit_uri: str
    summary: pd.DataFrame
    failures: pd.DataFrame
    latency: LatencyStats
    histogram: Histogram
    failed_rows: FailedRows
    days: int | None = None
    generated_at: datetime | None = None
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def per_run(self) -> pd.DataFrame:
        """The summary's ``grain == "run"`` rows."""
        return self.summary[self.summary["grain"] == "run"].reset_index(drop=True)

    @property
    def per_day(self) -> pd.DataFrame:
        """The summary's ``grain == "day"`` rows."""
        return self.summary[self.summary["grain"] == "day"].reset_index(drop=True)

    @property
    def problem_rows(self) -> pd.DataFrame:
        """The first failed and pending rows (most recent day first); all are in the CSV."""
        return self.failed_rows.head

    def total(self, column: str) -> int:
        """The sum of ``column`` over every day."""
        return int(self.per_day[column].fillna(0).sum())

    def totals(self) -> dict[str, Any]:
        """The whole period's figures: counts, API usage, p50/p95 over every processed image."""
        out: dict[str, Any] = {"days": len(self.per_day)}
        for col in ("runs", *_COUNTS, "orders", "bytes_processed", *_API):
            out[col] = self.total(col)
        out["latency_p50_seconds"] = self.latency.p50
        out["latency_p95_seconds"] = self.latency.p95
        return out


def build_report(
    data: AuditData, days: int | None = None, generated_at: datetime | None = None
) -> Report:
    """The report's figures, from one streaming pass over ``data``'s files."""
    agg = scan_audit(data)
    runs = run_rows(agg, latency.by_group(agg.latencies))
    daily = day_rows(runs, agg.counts, latency.by_day(agg.latencies))
    overall, histogram = latency.overall(agg.latencies.values())
    agg.latencies.clear()
    summary = pd.concat([runs, daily], ignore_index=True)[SUMMARY_SCHEMA.names]
    return Report(
        audit_uri=data.audit_uri,
        summary=summary,
        failures=failure_counts(agg.counts),
        latency=overall,
        histogram=histogram,
        failed_rows=agg.failed_rows,
        days=days,
        generated_at=generated_at,
        files=data.files,
        problems=list(data.problems),
    )


def _codes(counts: pd.DataFrame, by: list[str]) -> pd.Series:
    """Failed rows by error code, as ``[(code, rows), ...]`` (most frequent first) per group."""
    failed = counts[counts["status"].eq("failed")]
    codes = failed["error_code"].fillna(NO_CODE).astype(str)
    summed = failed.assign(error_code=codes).groupby([*by, "error_code"])["rows"].sum()
    ranked = summed.reset_index(name="n").sort_values(["n", "error_code"], ascending=[False, True])
    lists: dict[Any, list[tuple[str, int]]] = {}
    for row in ranked.itertuples(index=False):
        key = tuple(getattr(row, col) for col in by)
        lists.setdefault(key if len(by) > 1 else key[0], []).append((row.error_code, int(row.n)))
    if not lists:
        return pd.Series(dtype=object)
    return pd.Series(lists, dtype=object)


def run_rows(agg: Aggregates, latencies: pd.DataFrame) -> pd.DataFrame:
    """One summary row per run (``grain == "run"``); ``latencies`` by ``(run_date, run_id)``."""
    counts, runs = agg.counts, agg.runs
    flags = counts[KEY].assign(images=counts["rows"])
    for status in STATUSES:
        flags[status] = counts["rows"].where(counts["status"].eq(status), 0)
    processed_bytes = counts["bytes"].where(counts["status"].eq("processed"))
    flags["bytes_processed"] = processed_bytes.fillna(0).astype("int64")
    counted = flags.groupby(KEY).sum()

    meta = runs.assign(run_id=runs["run_id"].fillna(UNKNOWN)).drop_duplicates(KEY, keep="last")
    kept = ["manifest_uri", "started_at", "finished_at", "wall_seconds", "rows", *STATUSES]
    meta = meta.set_index(KEY)[[*kept, "orders", *_API]].rename(
        columns={"rows": "images", "orders": "planned_orders"}
    )
    keys = counted.index.union(meta.index)
    out = pd.DataFrame(index=keys)
    for col in _COUNTS:
        from_images = counted[col].reindex(keys)
        out[col] = from_images.fillna(meta[col].reindex(keys)).fillna(0).astype("int64")
    out["bytes_processed"] = counted["bytes_processed"].reindex(keys).fillna(0).astype("int64")
    for col in ("manifest_uri", "started_at", "finished_at", "wall_seconds", *_API):
        out[col] = meta[col].reindex(keys)
    driven = agg.orders.groupby(KEY)["order_key"]
    out["orders"] = (
        driven.nunique().reindex(keys).fillna(meta["planned_orders"].reindex(keys)).fillna(0)
    ).astype("int64")
    out = out.join(latencies)
    out["latency_images"] = out["latency_images"].fillna(0)
    out["failed_by_code"] = _codes(counts, KEY).reindex(keys)
    out["grain"], out["runs"] = "run", 1
    out = out.reset_index().sort_values(["run_date", "started_at", "run_id"], na_position="last")
    return _finish(out)


def day_rows(runs: pd.DataFrame, counts: pd.DataFrame, latencies: pd.DataFrame) -> pd.DataFrame:
    """One summary row per ``run_date`` (``grain == "day"``), from the per-run rows."""
    if runs.empty:
        return runs.copy()
    frame = runs.assign(run_date=runs["run_date"].astype(str))
    grouped = frame.groupby("run_date")
    out = pd.DataFrame({"runs": grouped.size()})
    for col in (*_COUNTS, "orders", "bytes_processed"):
        out[col] = grouped[col].sum()
    for col in ("wall_seconds", *_API):
        out[col] = grouped[col].sum(min_count=1)
    out["started_at"] = grouped["started_at"].min()
    out["finished_at"] = grouped["finished_at"].max()
    out = out.join(latencies)
    out["latency_images"] = out["latency_images"].fillna(0)
    out["failed_by_code"] = _codes(counts, ["run_date"]).reindex(out.index)
    out["grain"], out["run_id"], out["manifest_uri"] = "day", None, None
    return _finish(out.reset_index().sort_values("run_date"))


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order, dates as dates, counts as nullable integers, lists for maps."""
    frame = frame.copy()
    for name in SUMMARY_SCHEMA.names:
        if name not in frame.columns:
            frame[name] = None
    frame["run_date"] = frame["run_date"].map(_as_date)
    frame["failed_by_code"] = frame["failed_by_code"].map(
        lambda v: v if isinstance(v, list) else []
    )
    for fld in SUMMARY_SCHEMA:
        if pa.types.is_integer(fld.type):
            frame[fld.name] = pd.array(frame[fld.name], dtype="Int64")
        elif pa.types.is_floating(fld.type):
            frame[fld.name] = pd.to_numeric(frame[fld.name]).astype("float64")
        elif pa.types.is_timestamp(fld.type):
            frame[fld.name] = pd.to_datetime(frame[fld.name], utc=True)
    return frame[SUMMARY_SCHEMA.names].reset_index(drop=True)


def _as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def failure_counts(counts: pd.DataFrame) -> pd.DataFrame:
    """Failed and pending rows by error code, per run and per day (long format)."""
    bad = counts[counts["status"].isin(["failed", "pending"])]
    bad = bad.assign(error_code=bad["error_code"].fillna(NO_CODE).astype(str))
    per_run = bad.groupby([*KEY, "status", "error_code"])["rows"].sum().reset_index()
    per_day = bad.groupby(["run_date", "status", "error_code"])["rows"].sum().reset_index()
    out = pd.concat(
        [per_run.assign(grain="run"), per_day.assign(grain="day", run_id=None)], ignore_index=True
    )
    for name in FAILURES_SCHEMA.names:
        if name not in out.columns:
            out[name] = None
    out["run_date"] = out["run_date"].map(_as_date)
    out["rows"] = pd.array(out["rows"], dtype="Int64")
    out = out.sort_values(
        ["grain", "run_date", "run_id", "status", "rows", "error_code"],
        ascending=[False, True, True, True, False, True],
        na_position="first",
    )
    return out[FAILURES_SCHEMA.names].reset_index(drop=True)


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A summary frame as an Arrow table with exactly ``schema``."""
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
