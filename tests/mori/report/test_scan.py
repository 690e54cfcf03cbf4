"""The streaming pass: batch by batch it gives the figures of the whole table, never holding it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mori.batch.audit import write_table
from mori.batch.storage import Storage
from mori.report import build_report, load_audit, scan, write_report
from mori.report.load import AuditData

from .helpers import DAY1, DAY2, failed, image, processed, write_audit, write_old_partition


def _audit(tmp_path: Path) -> Path:
    """The synthetic audit, its older partition, and a file holding two runs and a null run."""
    audit = tmp_path / "audit"
    storage = Storage()
    write_audit(str(audit), storage, old=True)
    day = date(2026, 3, 2)
    mixed = pa.table(
        {
            "run_id": ["run-x", "run-y", None, "run-x", "run-y"],
            "row_index": pa.array([1, 0, 0, 0, 1], pa.int64()),
            "status": ["failed", "processed", "pending", "processed", "failed"],
            "error_code": ["E1", None, "ORDER_INCOMPLETE", None, None],
            "created_at": pa.array([None, 0, None, 0, None], pa.timestamp("ms", tz="UTC")),
            "completed_at": pa.array([None, 9000, None, 4000, None], pa.timestamp("ms", tz="UTC")),
        }
    )
    path = audit / "images" / f"run_date={day.isoformat()}" / "mixed.parquet"
    pq.write_table(mixed, path)
    return audit


def _outputs(audit: Path, out: Path) -> dict[str, object]:
    report = build_report(load_audit(str(audit)))
    folder = Path(write_report(report, str(out)).out_uri)
    return {
        "summary": report.summary.to_csv(index=False),
        "failures": report.failures.to_csv(index=False),
        "rows": (folder / "failed_rows.csv").read_bytes(),
        "head": report.problem_rows.to_csv(index=False),
        "totals": report.totals(),
        "problems": report.problems,
    }


def test_tiny_batches_give_the_same_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = _audit(tmp_path)
    whole = _outputs(audit, tmp_path / "whole")
    monkeypatch.setattr(scan, "BATCH_ROWS", 2)
    assert _outputs(audit, tmp_path / "tiny") == whole


def test_the_images_table_is_never_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: AuditData, table: str) -> pd.DataFrame:
        if table == "images":
            raise AssertionError("the report read the whole images table")
        return original(self, table)

    original = AuditData.frame
    monkeypatch.setattr(AuditData, "frame", refuse)
    report = build_report(load_audit(str(_audit(tmp_path))))
    assert report.totals()["images"] == 15 + 3 + 5


def test_several_runs_in_one_file_and_a_run_without_id(tmp_path: Path) -> None:
    report = build_report(load_audit(str(_audit(tmp_path))))
    runs = report.per_run.set_index("run_id")
    assert runs.loc["run-x", "latency_p50_seconds"] == 4.0
    assert runs.loc["run-y", "latency_p50_seconds"] == 9.0
    assert runs.loc["run-y", "failed_by_code"] == [("(no code)", 1)]
    assert runs.loc["(unknown)", "pending"] == 1
    rows = report.problem_rows
    # most recent day first; within a day by run, then row
    assert list(zip(rows["run_date"], rows["run_id"], rows["row_index"], strict=True))[:5] == [
        ("2026-03-02", "(unknown)", 0),
        ("2026-03-02", "run-c", 3),
        ("2026-03-02", "run-x", 1),
        ("2026-03-02", "run-y", 1),
        ("2026-03-01", "run-a", 4),
    ]
    assert rows["run_date"].iloc[-1] == "2026-02-27"  # the older partition last


def test_a_file_damaged_past_its_footer_is_left_out_whole(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    storage = Storage()
    write_audit(str(audit), storage)
    damaged = audit / "images" / f"run_date={DAY1.isoformat()}" / "run-a.parquet"
    data = bytearray(damaged.read_bytes())
    data[4:200] = b"\xff" * 196  # the first column chunks; the footer at the end is intact
    damaged.write_bytes(bytes(data))
    loaded = load_audit(str(audit))
    assert loaded.problems == [] and loaded.files == 9  # the footer still reads
    report = build_report(loaded)
    assert len(report.problems) == 1 and "run-a.parquet: unreadable" in report.problems[0]
    assert report.files == 8
    # none of run-a's rows counted (its runs row remains: it falls back to those totals)
    assert report.totals()["images"] == 15 and report.failed_rows.count == 5 - 2
    assert report.per_run.set_index("run_id").loc["run-a", "latency_images"] == 0


def test_a_column_that_does_not_cast_reads_as_nulls(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    path = audit / "images" / "run_date=2026-01-05" / "r.parquet"
    path.parent.mkdir(parents=True)
    table = pa.table({"run_id": ["r", "r"], "status": ["processed", "failed"], "bytes": ["x", "y"]})
    pq.write_table(table, path)
    report = build_report(load_audit(str(audit)))
    assert report.totals()["images"] == 2 and report.totals()["bytes_processed"] == 0
    assert report.problems == ["column bytes: string does not cast to int64; nulls"]


def test_in_order_keeps_order_and_bounds_the_work_ahead() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002 * (n % 3))
        return n * n

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = []
        for value in scan.in_order(pool, work, range(20), ahead=3):
            with lock:
                running -= 1  # consumed: no longer ahead
            results.append(value)
    assert results == [n * n for n in range(20)]
    assert most <= 3


def test_the_days_window_reads_only_its_files(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    storage = Storage()
    write_audit(str(audit), storage)
    write_old_partition(str(audit), storage)
    rows = [
        processed("run-z", 0, DAY2, "oz", 7),
        failed("run-z", 1, DAY2, "X"),
        image("run-z", 2, "skipped", DAY2),
    ]
    write_table(storage, str(audit), rows, "run-z", DAY2)
    data = load_audit(str(audit), days=1, today=DAY2)
    assert data.files == 4  # images of run-c and run-z, orders and runs of run-c
    report = build_report(data)
    assert list(report.per_run["run_id"]) == ["run-c", "run-z"]
    assert report.totals()["images"] == 4 + 3 and report.failed_rows.count == 2
