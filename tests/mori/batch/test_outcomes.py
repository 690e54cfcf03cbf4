"""Audit rows: exactly one outcome per manifest row (invariant 2), written as Parquet."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from mori.batch.audit import write_table
from mori.batch.ledger import Ledger
from mori.batch.manifest import load
from mori.batch.orders import ImageResult, OrderResult
from mori.batch.outcomes import manifest_rows, summarise
from mori.batch.plan import plan_orders, record_intent, triage
from mori.batch.storage import Storage
from tests.support.images import write_image, write_manifest


def test_every_row_gets_exactly_one_outcome(tmp_path: Path, ledger: Ledger) -> None:
    for n in range(6):
        write_image(tmp_path / f"{n}.jpg", seed=n)
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [
            {"source": "0.jpg", "status": "mine", "album": "a"},  # done in an earlier run
            {"source": "1.jpg", "album": "b"},  # failed in an earlier run
            {"source": "2.jpg", "album": "c"},  # planned earlier, its order crashed this run
            {"source": "3.jpg", "album": "d"},  # processed this run
            {"source": "4.jpg", "album": "e"},  # failed this run
            {"source": "missing.jpg", "album": "f"},  # bad row
            {"source": "0.jpg", "album": "g"},  # duplicate row
        ],
    )
    storage = Storage()
    items = load(str(manifest), storage)
    k = [it.image_key for it in items]

    # An earlier run: 0 processed, 1 failed (in one order), 2 planned in an order never finished.
    earlier = plan_orders(items[:2], 10) + plan_orders(items[2:3], 10)
    record_intent(earlier, items, ledger)
    ledger.advance(earlier[0].order_key, "downloaded", order_id="ord-old")
    ledger.image_done(k[0], "out/0.jpg", "sha-out-0")
    ledger.image_done(k[1], None, None, "DIMENSIONS_MISMATCH", "wrong size")

    # This run.
    tri = triage(items, ledger)
    assert [it.image_key for it in tri.new] == [k[3], k[4]]
    (new_order,) = plan_orders(tri.new, 10)
    record_intent([new_order], items, ledger)
    ledger.advance(new_order.order_key, "downloaded", order_id="ord-new")
    result = OrderResult(
        new_order.order_key,
        "upload",
        "processed",
        "ord-new",
        images={
            k[3]: ImageResult(k[3], "processed", "out/3.jpg", "sha-out-3"),
            k[4]: ImageResult(k[4], "failed", error_code="RESULT_MISSING", error_message="gone"),
        },
        record=ledger.order(new_order.order_key),
    )
    crashed = {earlier[1].order_key: "upload failed: connection reset"}

    rows = manifest_rows(
        "run-2", str(manifest), items, tri.known, {new_order.order_key: result}, crashed, ledger
    )

    assert [r.row_index for r in rows] == list(range(len(items)))
    assert [r.status for r in rows] == [
        "skipped",
        "failed",
        "pending",
        "processed",
        "failed",
        "failed",
        "failed",
    ]
    skipped, old_fail, pending, done, new_fail, bad, dup = rows
    assert (skipped.output_uri, skipped.order_id, skipped.attempts) == ("out/0.jpg", "ord-old", 0)
    assert old_fail.error_code == "DIMENSIONS_MISMATCH"
    assert old_fail.error_message is not None
    assert "ord-old" in old_fail.error_message and "wrong size" in old_fail.error_message
    assert "--retry-failed" in old_fail.error_message
    assert pending.error_code == "ORDER_INCOMPLETE"
    assert pending.error_message is not None and "connection reset" in pending.error_message
    assert pending.order_key == earlier[1].order_key
    assert (done.output_uri, done.order_id, done.order_key) == (
        "out/3.jpg",
        "ord-new",
        new_order.order_key,
    )
    assert (new_fail.error_code, new_fail.error_message) == ("RESULT_MISSING", "gone")
    assert bad.error_code == "FILE_NOT_FOUND"
    assert dup.error_code == "DUPLICATE_ROW"
    assert [r.extra["album"] for r in rows] == list("abcdefg")

    summary = summarise("run-2", rows, orders=1)
    assert summary.rows == len(items) == sum(summary.counts.values())
    assert summary.failures == {
        "DIMENSIONS_MISMATCH": 1,
        "RESULT_MISSING": 1,
        "FILE_NOT_FOUND": 1,
        "DUPLICATE_ROW": 1,
    }

    uri = write_table(storage, str(tmp_path / "audit"), rows, "run-2", date(2026, 2, 19))
    table = pq.read_table(uri)
    assert table.column("status").to_pylist() == [r.status for r in rows]
    assert table.column("album").to_pylist() == list("abcdefg")
    # A manifest column named like an audit column is kept under a prefixed name.
    assert table.column("manifest_status").to_pylist()[0] == "mine"
    assert table.column("status").to_pylist()[0] == "skipped"


def test_jsonl_manifest_with_a_mixed_column_can_be_audited(tmp_path: Path, ledger: Ledger) -> None:
    write_image(tmp_path / "a.jpg", seed=1)
    write_image(tmp_path / "b.jpg", seed=2)
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [{"source": "a.jpg", "size": 3}, {"source": "b.jpg", "size": "large"}],
    )
    items = load(str(manifest), Storage())
    rows = manifest_rows("r", str(manifest), items, triage(items, ledger).known, {}, {}, ledger)
    uri = write_table(Storage(), str(tmp_path / "audit"), rows, "r", date(2026, 1, 1))
    assert pq.read_table(uri).column("size").to_pylist() == ["3", "large"]
