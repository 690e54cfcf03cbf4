"""A realistic synthetic audit for the report benchmark, written column-wise with numpy/pyarrow.

``write_audit(root, rows)`` writes ``images``, ``orders`` and ``runs`` under ``root/audit`` as the
pipeline would (one zstd Parquet file per run and table, ``run_date=`` folders): runs of 10k-90k
rows over about one day per three runs; two runs in three are URL manifests (no bytes or sizes),
one in three local files. Most rows are processed, some skipped, some failed with a spread of
error codes (one run in 25 is a bad one: a third of its rows failed), a few pending. Most runs
carry a ``collection`` manifest column, some a ``priority`` (an integer, text in one run), and
the oldest runs were written by an older writer (``schema_version`` 0, fewer columns, ``int32``
counts), so the report's tolerant reading is exercised too. The same ``rows`` and ``seed`` give
the same audit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mori.batch.audit import IMAGES_SCHEMA, ORDERS_SCHEMA, RUNS_SCHEMA

MEAN_RUN = 50_000
FIRST_DAY = date(2026, 1, 5)
FAILED_CODES = {
    "FILE_NOT_FOUND": 30,
    "INVALID_IMAGE": 20,
    "UNSUPPORTED_FORMAT": 15,
    "DUPLICATE_ROW": 12,
    "URL_PRIVATE_ADDRESS": 6,
    "DOWNLOAD_FAILED": 8,
    "IMAGE_TOO_LARGE": 4,
    "VERIFICATION_FAILED": 2,
    "ORDER_FAILED": 2,
    "QUOTA_EXCEEDED": 1,
}
PENDING_CODES = {"ORDER_INCOMPLETE": 3, "WAITING_FOR_MORI": 1}
TS_MS = pa.timestamp("ms", tz="UTC")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def run_sizes(rows: int, rng: np.random.Generator) -> list[int]:
    """Run sizes between 0.2 and 1.8 times the mean that add up to ``rows``."""
    runs = max(2, round(rows / MEAN_RUN))
    weights = rng.uniform(0.2, 1.8, runs)
    sizes = np.floor(weights / weights.sum() * rows).astype(int)
    sizes[-1] += rows - int(sizes.sum())
    return [int(s) for s in sizes]


def hex_strings(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    """``n`` random lower-case hex strings of ``2 * nbytes`` characters."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2], chars[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    offsets = np.arange(0, (n + 1) * 2 * nbytes, 2 * nbytes, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def text(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays, numbers and literals."""
    arrays = [p if isinstance(p, str) else pc.cast(p, pa.string()) for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def choose(rng: np.random.Generator, weights: dict[str, int], n: int) -> np.ndarray:
    """``n`` keys of ``weights`` drawn with those weights."""
    keys, w = list(weights), np.array(list(weights.values()), dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=w / w.sum())]


def stamps(base: datetime, offsets_ms: np.ndarray, mask: np.ndarray) -> pa.Array:
    """``base`` plus ``offsets_ms`` as UTC milliseconds, null where ``mask`` is false."""
    values = int(base.timestamp() * 1000) + offsets_ms.astype(np.int64)
    return pa.array(values, pa.int64(), mask=~mask).cast(TS_MS)


def image_table(run: int, run_id: str, day: date, n: int, rng: np.random.Generator) -> pa.Table:
    """One run's ``images`` rows (statuses, codes, orders, times, manifest columns)."""
    urls = run % 3 != 2
    bad = run % 25 == 7
    roll = rng.random(n)
    failed_share, pending_share = (0.33, 0.01) if bad else (0.025, 0.008)
    skipped_share = 0.0 if run % 4 == 0 else 0.12
    status = np.where(
        roll < failed_share,
        "failed",
        np.where(
            roll < failed_share + pending_share,
            "pending",
            np.where(roll < failed_share + pending_share + skipped_share, "skipped", "processed"),
        ),
    ).astype(object)
    is_failed, is_pending = status == "failed", status == "pending"
    done = (status == "processed") | (status == "skipped")
    code = np.full(n, None, dtype=object)
    code[is_failed] = choose(rng, FAILED_CODES, int(is_failed.sum()))
    code[is_pending] = choose(rng, PENDING_CODES, int(is_pending.sum()))
    has_code = is_failed | is_pending
    index = pa.array(np.arange(n, dtype=np.int64))
    short = run_id[:8]
    if urls:
        source = text(f"https://cdn{run % 50}.example.com/photos/{short}/", index, "-p.jpg")
    else:
        source = text(f"images/{short}/", pc.divide(index, 1000), "/img-", index, ".jpg")
    code_array = pa.array(code, pa.string())
    message = pc.if_else(
        pa.array(has_code), text(code_array, ": could not be processed (row ", index, ")"), None
    )
    order = np.arange(n) // 100
    order_key = pc.if_else(pa.array(done), text(f"ok-{short}-", pa.array(order)), None)
    start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC) + timedelta(minutes=run % 97)
    created = order * 900 + rng.integers(0, 400, n)
    skipped = status == "skipped"
    created = np.where(skipped, created - 86_400_000 * 3, created)
    latency = np.round(rng.lognormal(9.6, 0.6, n)).astype(np.int64)  # ~15 s median, in ms
    nums = rng.integers(20_000, 4_000_000, n)
    columns: dict[str, pa.Array] = {
        "run_id": pa.array([run_id] * n, pa.string()),
        "manifest_uri": pa.array([f"s3://team/manifests/{short}.csv"] * n, pa.string()),
        "row_index": index,
        "source": source,
        "id": text("r", index),
        "file_name": text(index, "-p.jpg"),
        "image_key": hex_strings(rng, n, 16),
        "sha256": pa.nulls(n, pa.string()) if urls else hex_strings(rng, n, 32),
        "bytes": pa.nulls(n, pa.int64()) if urls else pa.array(nums),
        "width": pa.nulls(n, pa.int64()) if urls else pa.array(nums % 4000 + 64),
        "height": pa.nulls(n, pa.int64()) if urls else pa.array(nums % 3000 + 48),
        "order_key": order_key,
        "order_id": pc.if_else(pa.array(done), text(f"o-{short}-", pa.array(order)), None),
        "status": pa.array(status, pa.string()),
        "error_code": code_array,
        "error_message": message,
        "attempts": pa.array(np.where(skipped, 0, 1).astype(np.int64)),
        "output_uri": pc.if_else(pa.array(done), text(f"s3://out/{short}/", index, ".jpg"), None),
        "output_sha256": pc.if_else(pa.array(done), hex_strings(rng, n, 32), None),
        "created_at": stamps(start, created, done),
        "confirmed_at": stamps(start, created + 1000, done),
        "completed_at": stamps(start, created + latency, done),
        "downloaded_at": stamps(start, created + latency + 2000, done),
        "recorded_at": stamps(start, np.full(n, order[-1] * 900 + 60_000), np.ones(n, bool)),
        "schema_version": pa.array(np.ones(n, np.int32)),
    }
    table = pa.table(columns, schema=IMAGES_SCHEMA)
    if run % 5 != 4:
        table = table.append_column(
            "collection", text(f"collection-{run % 7}-", pa.array(np.arange(n) % 13))
        )
    if run % 3 == 0:
        priority = pa.array(rng.integers(0, 5, n))
        table = table.append_column("priority", text(priority) if run == 3 else priority)
    return table


def older(table: pa.Table) -> pa.Table:
    """``table`` as the older writer had it: fewer columns, ``int32`` bytes, version 0."""
    kept = [c for c in table.column_names if c not in ("width", "height", "output_sha256", "id")]
    table = table.select(kept)
    table = table.set_column(
        kept.index("bytes"), "bytes", pc.cast(table.column("bytes"), pa.int32())
    )
    zeros = pa.array(np.zeros(table.num_rows, np.int32))
    return table.set_column(kept.index("schema_version"), "schema_version", zeros)


def order_table(images: pa.Table, run_id: str) -> pa.Table:
    """One row per order of the run's processed or skipped images."""
    keys = pc.drop_null(pc.unique(images.column("order_key")))
    n = len(keys)
    stamp = pa.array([images.column("recorded_at")[0].as_py()] * n, TS_MS)
    columns = {
        "run_id": pa.array([run_id] * n, pa.string()),
        "order_key": keys,
        "order_id": pc.replace_substring(keys, "ok-", "o-"),
        "kind": pa.array(["url"] * n, pa.string()),
        "generation": pa.array(np.zeros(n, np.int64)),
        "status": pa.array(["processed"] * n, pa.string()),
        "file_count": pa.array(np.full(n, 100, np.int64)),
        "processed": pa.array(np.full(n, 97, np.int64)),
        "failed": pa.array(np.full(n, 3, np.int64)),
        "error_code": pa.nulls(n, pa.string()),
        "error_message": pa.nulls(n, pa.string()),
        "attempts": pa.array(np.ones(n, np.int64)),
        "replaced_order_keys": pa.array([[]] * n, pa.list_(pa.string())),
        "planned_at": stamp,
        "created_at": stamp,
        "confirmed_at": stamp,
        "completed_at": stamp,
        "downloaded_at": stamp,
        "recorded_at": stamp,
        "schema_version": pa.array(np.ones(n, np.int32)),
    }
    return pa.table(columns, schema=ORDERS_SCHEMA)


def run_table(images: pa.Table, orders: int, run_id: str, run: int) -> pa.Table:
    """The run's one ``runs`` row: its totals and API usage."""
    counts = images.group_by("status").aggregate([([], "count_all")]).to_pydict()
    by = dict(zip(counts["status"], counts["count_all"], strict=True))
    start = pc.min(images.column("recorded_at")).as_py() - timedelta(hours=2)
    end = pc.max(images.column("recorded_at")).as_py()
    requests = orders * 3 + images.num_rows // 100 + 4
    row = {
        "run_id": run_id,
        "manifest_uri": images.column("manifest_uri")[0].as_py(),
        "started_at": start,
        "finished_at": end,
        "wall_seconds": (end - start).total_seconds(),
        "rows": images.num_rows,
        **{s: by.get(s, 0) for s in ("processed", "skipped", "failed", "pending")},
        "orders": orders,
        "api_requests": requests,
        "api_retries": requests // 50 + run % 3,
        "rate_limited": run % 4,
        "schema_version": 1,
    }
    return pa.Table.from_pylist([row], schema=RUNS_SCHEMA)


def write_audit(root: Path, rows: int, seed: int = 5) -> Path:
    """The synthetic audit of ``rows`` image rows under ``root/audit`` (kept once complete)."""
    audit = root / "audit"
    done = root / ".complete"
    if done.exists():
        return audit
    rng = np.random.default_rng(seed)
    sizes = run_sizes(rows, rng)
    days = max(2, len(sizes) // 3)
    for run, n in enumerate(sizes):
        run_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        day = FIRST_DAY + timedelta(days=run * days // len(sizes))
        images = image_table(run, run_id, day, n, rng)
        orders = order_table(images, run_id)
        runs = run_table(images, orders.num_rows, run_id, run)
        if run < max(1, len(sizes) // 20):  # the oldest runs: an older writer's files
            images = older(images)
        for name, table in (("images", images), ("orders", orders), ("runs", runs)):
            folder = audit / name / f"run_date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / f"{run_id}.parquet", compression="zstd")
    done.touch()
    return audit
