"""The report's figures on a synthetic audit with known answers (see ``helpers.py``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mori.report import SUMMARY_SCHEMA, Report, build_report, load_audit, write_report

from .helpers import DAY1, DAY2


def _row(frame: pd.DataFrame, **match: object) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for col, value in match.items():
        mask &= frame[col] == value
    rows = frame[mask]
    assert len(rows) == 1, rows
    return rows.iloc[0]


EXPECTED_RUNS = {
    # run: images, processed, skipped, failed, pending, orders, p50, p95, requests, retries, 429s
    "run-a": (6, 4, 0, 2, 0, 3, 20.0, 54.0, 20, 3, 1),
    "run-b": (5, 0, 3, 1, 1, 1, None, None, 4, 0, 0),
    "run-c": (4, 3, 0, 1, 0, 1, 5.0, 5.0, 10, 2, 0),
}
COLUMNS = (
    "images",
    "processed",
    "skipped",
    "failed",
    "pending",
    "orders",
    "latency_p50_seconds",
    "latency_p95_seconds",
    "api_requests",
    "api_retries",
    "rate_limited",
)


@pytest.mark.parametrize("run_id", sorted(EXPECTED_RUNS))
def test_per_run_figures(report: Report, run_id: str) -> None:
    row = _row(report.per_run, run_id=run_id)
    for col, want in zip(COLUMNS, EXPECTED_RUNS[run_id], strict=True):
        got = row[col]
        if want is None:
            assert pd.isna(got), (col, got)
        else:
            assert got == pytest.approx(want), (run_id, col, got)


def test_per_run_failed_by_code_and_latency_count(report: Report) -> None:
    runs = report.per_run.set_index("run_id")
    assert runs.loc["run-a", "failed_by_code"] == [("FILE_NOT_FOUND", 1), ("INVALID_IMAGE", 1)]
    assert runs.loc["run-b", "failed_by_code"] == [("INVALID_IMAGE", 1)]
    assert runs.loc["run-c", "failed_by_code"] == [("UNSUPPORTED_FORMAT", 1)]
    # skipped rows carry the earlier order's 100-second stamps: they are not this run's latency
    assert list(runs["latency_images"]) == [4, 0, 3]
    assert runs.loc["run-a", "latency_max_seconds"] == 60.0
    assert runs.loc["run-a", "bytes_processed"] == 1000 + 2000 + 3000 + 4000
    assert list(runs["run_date"]) == [DAY1, DAY1, DAY2]
    assert (runs["runs"] == 1).all()


def test_per_day_figures(report: Report) -> None:
    days = report.per_day.set_index("run_date")
    assert list(days.index) == [DAY1, DAY2]
    one, two = days.loc[DAY1], days.loc[DAY2]
    assert (one["runs"], one["images"], one["processed"], one["skipped"]) == (2, 11, 4, 3)
    assert (one["failed"], one["pending"], one["orders"]) == (3, 1, 4)
    assert one["failed_by_code"] == [("INVALID_IMAGE", 2), ("FILE_NOT_FOUND", 1)]
    # over the day's four processed images (10, 20, 20, 60), not an average of run figures
    assert one["latency_p50_seconds"] == 20.0
    assert one["latency_p95_seconds"] == pytest.approx(54.0)
    assert (one["api_requests"], one["api_retries"], one["rate_limited"]) == (24, 3, 1)
    assert (two["runs"], two["images"], two["processed"], two["failed"]) == (1, 4, 3, 1)
    assert (two["latency_p50_seconds"], two["latency_p95_seconds"]) == (5.0, 5.0)
    assert (two["api_requests"], two["api_retries"]) == (10, 2)
    assert days["run_id"].isna().all() and days["manifest_uri"].isna().all()


def test_totals_over_the_period(report: Report) -> None:
    totals = report.totals()
    assert totals["runs"] == 3 and totals["days"] == 2
    assert (totals["images"], totals["processed"], totals["failed"]) == (15, 7, 4)
    assert (totals["api_requests"], totals["api_retries"]) == (34, 5)
    # seven processed images: 5, 5, 5, 10, 20, 20, 60
    assert totals["latency_p50_seconds"] == 10.0
    assert totals["latency_p95_seconds"] == pytest.approx(48.0)


def test_failures_long_table(report: Report) -> None:
    day = report.failures[report.failures["grain"] == "day"]
    counts = {(r.run_date, r.status, r.error_code): r.rows for r in day.itertuples()}
    assert counts == {
        (DAY1, "failed", "INVALID_IMAGE"): 2,
        (DAY1, "failed", "FILE_NOT_FOUND"): 1,
        (DAY1, "pending", "ORDER_INCOMPLETE"): 1,
        (DAY2, "failed", "UNSUPPORTED_FORMAT"): 1,
    }
    per_run = report.failures[report.failures["grain"] == "run"]
    assert int(per_run["rows"].sum()) == 5 and per_run["run_id"].notna().all()


def test_problem_rows_are_the_failed_and_pending_rows(report: Report) -> None:
    rows = report.problem_rows
    assert len(rows) == 5
    assert set(rows["status"]) == {"failed", "pending"}
    assert rows["run_date"].iloc[0] == DAY2.isoformat()  # most recent day first


def test_summary_parquet_has_the_documented_schema(report: Report, tmp_path: Path) -> None:
    files = write_report(report, str(tmp_path / "out"))
    table = pq.read_table(files.summary)
    assert table.schema.remove_metadata().equals(SUMMARY_SCHEMA)
    frame = table.to_pandas()
    assert list(frame["grain"]) == ["run", "run", "run", "day", "day"]
    day1 = frame[(frame["grain"] == "day") & (frame["run_date"] == date(2026, 3, 1))].iloc[0]
    assert dict(day1["failed_by_code"]) == {"INVALID_IMAGE": 2, "FILE_NOT_FOUND": 1}


def test_days_keeps_only_the_last_run_dates(audit: Path) -> None:
    data = load_audit(str(audit), days=1, today=DAY2)
    report = build_report(data, days=1)
    assert list(report.per_run["run_id"]) == ["run-c"]
    assert report.totals()["images"] == 4
    assert data.files == 3  # one file per table, the other day's never read


def test_a_run_without_images_file_falls_back_to_its_runs_row(audit: Path) -> None:
    for path in (audit / "images").rglob("run-c.parquet"):
        path.unlink()
    for path in (audit / "orders").rglob("run-c.parquet"):
        path.unlink()
    row = _row(build_report(load_audit(str(audit))).per_run, run_id="run-c")
    assert (row["images"], row["processed"], row["failed"], row["orders"]) == (4, 3, 1, 1)
    assert pd.isna(row["latency_p50_seconds"]) and row["latency_images"] == 0


def test_an_empty_audit_gives_an_empty_report(tmp_path: Path) -> None:
    data = load_audit(str(tmp_path / "nothing"))
    assert data.empty and data.files == 0
    report = build_report(data)
    assert report.summary.empty and report.totals()["images"] == 0
    files = write_report(report, str(tmp_path / "out"))
    assert Path(files.html).exists() and pq.read_table(files.summary).num_rows == 0
