"""A synthetic audit with known figures, written through ``mori.batch.audit.write_table``.

Two days, three runs (figures the tests assert are spelled out beside each run):

2026-03-01, run ``run-a``: 6 rows — 4 processed in 3 orders (create→complete 10 s, 20 s ×2,
  60 s: p50 20, p95 54), 2 failed (INVALID_IMAGE, FILE_NOT_FOUND); 3 orders; API 20 requests,
  3 retries, 1 rate-limited.
2026-03-01, run ``run-b``: 5 rows — 3 skipped (stamped with an old order 100 s long, which must
  not count as latency), 1 failed (INVALID_IMAGE), 1 pending (ORDER_INCOMPLETE); 1 order;
  API 4 requests, 0 retries.
2026-03-02, run ``run-c``: 4 rows — 3 processed in one order (5 s), 1 failed
  (UNSUPPORTED_FORMAT) whose source and name are hostile text; 1 order; API 10 requests,
  2 retries.

Optionally an older partition (2026-02-27, run ``run-old``, ``schema_version = 0``) written by
hand without the columns added since: 2 processed (30 s), 1 failed (FILE_NOT_FOUND), no ``runs``
API columns beyond ``rows``/counts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mori.batch.audit import TS, ImageRow, OrderRow, RunRow, from_record, write_table
from mori.batch.storage import Storage, join

DAY1, DAY2, OLD_DAY = date(2026, 3, 1), date(2026, 3, 2), date(2026, 2, 27)
HOSTILE_SOURCE = '=HYPERLINK("http://evil.example","x")'
HOSTILE_NAME = "<script>alert('x')</script>.jpg"
HOSTILE_MESSAGE = "@SUM(1+1) <img src=x onerror=alert(1)>"


def _ts(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}+00:00"


def image(run_id: str, n: int, status: str, day: date, **fields: Any) -> ImageRow:
    row: dict[str, Any] = {
        "run_id": run_id,
        "manifest_uri": f"/data/{run_id}/manifest.csv",
        "row_index": n,
        "source": f"images/{run_id}-{n}.jpg",
        "id": f"{run_id}-{n}",
        "file_name": f"{run_id}-{n}.jpg",
        "image_key": f"key-{run_id}-{n}",
        "sha256": f"{n:064x}",
        "bytes": 1000 * (n + 1),
        "width": 64,
        "height": 48,
        "status": status,
        "attempts": 1,
        "recorded_at": _ts(day, "12:00:00"),
    }
    row.update(fields)
    return from_record(ImageRow, row)


def processed(run_id: str, n: int, day: date, order: str, seconds: int) -> ImageRow:
    return image(
        run_id,
        n,
        "processed",
        day,
        order_key=f"ok-{order}",
        order_id=order,
        output_uri=f"/out/{run_id}-{n}.jpg",
        output_sha256=f"{n + 7:064x}",
        created_at=_ts(day, "10:00:00"),
        confirmed_at=_ts(day, "10:00:01"),
        completed_at=_ts(day, f"10:{seconds // 60:02d}:{seconds % 60:02d}"),
        downloaded_at=_ts(day, "10:02:00"),
    )


def failed(run_id: str, n: int, day: date, code: str, **fields: Any) -> ImageRow:
    fields.setdefault("error_message", f"{code} here")
    return image(run_id, n, "failed", day, error_code=code, **fields)


def order(run_id: str, order_id: str, day: date, status: str, files: int) -> OrderRow:
    return OrderRow(
        **{
            "run_id": run_id,
            "order_key": f"ok-{order_id}",
            "order_id": order_id,
            "kind": "upload",
            "generation": 0,
            "status": status,
            "file_count": files,
            "processed": files if status == "processed" else 0,
            "failed": 0,
            "attempts": 1,
            "replaced_order_keys": [],
            "planned_at": _ts(day, "09:59:59"),
            "created_at": _ts(day, "10:00:00"),
            "recorded_at": _ts(day, "12:00:00"),
        }
    )


def run(
    run_id: str, day: date, counts: dict[str, int], orders: int, api: tuple[int, int, int]
) -> RunRow:
    return RunRow(
        **{
            "run_id": run_id,
            "manifest_uri": f"/data/{run_id}/manifest.csv",
            "started_at": _ts(day, "09:59:00"),
            "finished_at": _ts(day, "12:00:00"),
            "wall_seconds": 7261.0,
            "rows": sum(counts.values()),
            **{s: counts.get(s, 0) for s in ("processed", "skipped", "failed", "pending")},
            "orders": orders,
            "api_requests": api[0],
            "api_retries": api[1],
            "rate_limited": api[2],
        }
    )


def tables() -> dict[tuple[str, date], dict[str, list[Any]]]:
    """The three runs' rows, by (run_id, run_date) then table."""
    old = "ok-old"
    run_a = [
        processed("run-a", 0, DAY1, "o1", 10),
        processed("run-a", 1, DAY1, "o2", 20),
        processed("run-a", 2, DAY1, "o2", 20),
        processed("run-a", 3, DAY1, "o3", 60),
        failed("run-a", 4, DAY1, "INVALID_IMAGE", collection="spring"),
        failed("run-a", 5, DAY1, "FILE_NOT_FOUND", collection="spring"),
    ]
    skipped = {
        "order_key": old,
        "order_id": "o0",
        "created_at": _ts(DAY1, "08:00:00"),
        "completed_at": _ts(DAY1, "08:01:40"),
    }
    run_b = [
        image("run-b", 0, "skipped", DAY1, attempts=0, **skipped),
        image("run-b", 1, "skipped", DAY1, attempts=0, **skipped),
        image("run-b", 2, "skipped", DAY1, attempts=0, **skipped),
        failed("run-b", 3, DAY1, "INVALID_IMAGE"),
        image("run-b", 4, "pending", DAY1, error_code="ORDER_INCOMPLETE", error_message="waiting"),
    ]
    run_c = [
        processed("run-c", 0, DAY2, "o5", 5),
        processed("run-c", 1, DAY2, "o5", 5),
        processed("run-c", 2, DAY2, "o5", 5),
        failed(
            "run-c",
            3,
            DAY2,
            "UNSUPPORTED_FORMAT",
            source=HOSTILE_SOURCE,
            file_name=HOSTILE_NAME,
            error_message=HOSTILE_MESSAGE,
        ),
    ]
    return {
        ("run-a", DAY1): {
            "images": run_a,
            "orders": [
                order("run-a", "o1", DAY1, "processed", 1),
                order("run-a", "o2", DAY1, "processed", 2),
                order("run-a", "o3", DAY1, "processed", 1),
            ],
            "runs": [run("run-a", DAY1, {"processed": 4, "failed": 2}, 3, (20, 3, 1))],
        },
        ("run-b", DAY1): {
            "images": run_b,
            "orders": [order("run-b", "o4", DAY1, "pending", 1)],
            "runs": [run("run-b", DAY1, {"skipped": 3, "failed": 1, "pending": 1}, 1, (4, 0, 0))],
        },
        ("run-c", DAY2): {
            "images": run_c,
            "orders": [order("run-c", "o5", DAY2, "processed", 3)],
            "runs": [run("run-c", DAY2, {"processed": 3, "failed": 1}, 1, (10, 2, 0))],
        },
    }


def write_audit(audit_uri: str, storage: Storage | None = None, old: bool = False) -> str:
    """Write the synthetic audit under ``audit_uri`` (and the older partition when ``old``)."""
    storage = storage or Storage()
    for (run_id, day), by_table in tables().items():
        for rows in by_table.values():
            write_table(storage, audit_uri, rows, run_id, day)
    if old:
        write_old_partition(audit_uri, storage)
    return audit_uri


def write_old_partition(audit_uri: str, storage: Storage) -> None:
    """``run-old`` as an older writer would have: fewer columns, ``schema_version = 0``."""
    created = [f"{OLD_DAY.isoformat()}T10:00:00+00:00"] * 3
    images = pa.table(
        {
            "run_id": ["run-old"] * 3,
            "manifest_uri": ["/data/old.csv"] * 3,
            "row_index": pa.array([0, 1, 2], pa.int64()),
            "source": ["a.jpg", "b.jpg", "gone.jpg"],
            "image_key": ["k-a", "k-b", None],
            "status": ["processed", "processed", "failed"],
            "error_code": [None, None, "FILE_NOT_FOUND"],
            "error_message": [None, None, "no such file"],
            "created_at": pa.array(_stamps(created), TS),
            "completed_at": pa.array(
                _stamps([f"{OLD_DAY.isoformat()}T10:00:30+00:00"] * 2 + [None]), TS
            ),
            "schema_version": pa.array([0, 0, 0], pa.int32()),
        }
    )
    orders = pa.table(
        {
            "run_id": ["run-old"],
            "order_key": ["ok-old-1"],
            "order_id": ["o-old"],
            "status": ["processed"],
            "file_count": pa.array([2], pa.int64()),
            "schema_version": pa.array([0], pa.int32()),
        }
    )
    runs = pa.table(
        {
            "run_id": ["run-old"],
            "manifest_uri": ["/data/old.csv"],
            "rows": pa.array([3], pa.int64()),
            "processed": pa.array([2], pa.int64()),
            "failed": pa.array([1], pa.int64()),
            "schema_version": pa.array([0], pa.int32()),
        }
    )
    for name, table in (("images", images), ("orders", orders), ("runs", runs)):
        uri = join(audit_uri, name, f"run_date={OLD_DAY.isoformat()}", "run-old.parquet")
        storage.write_bytes(uri, _parquet(table))


def _stamps(values: list[str | None]) -> list[Any]:
    import pandas as pd

    return [None if v is None else pd.Timestamp(v) for v in values]


def _parquet(table: pa.Table) -> bytes:
    import io

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def write_local(root: Path, old: bool = True) -> Path:
    """The synthetic audit under ``root/audit`` (with the older partition by default)."""
    audit = root / "audit"
    write_audit(str(audit), old=old)
    return audit
