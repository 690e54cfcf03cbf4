"""A run planned a window of image keys at a time plans and audits exactly as the item path does
(:func:`mori.batch.plan.plan_and_record`, :func:`mori.batch.outcomes.manifest_rows`), on both
ledger backends: in one window in memory, and in many windows on disk."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mori.batch.audit import ImageRow, to_arrow
from mori.batch.estimate import dry_run
from mori.batch.ledger import Ledger
from mori.batch.manifest import ValidationOptions, load
from mori.batch.outcomes import manifest_rows
from mori.batch.plan import plan_and_record
from mori.batch.storage import Storage
from mori.batch.stream import RunAudit, StreamRun, survey_manifest
from tests.support.images import write_image, write_manifest

from .manifest.test_fastpath import random_rows

RATE = (60, "test")
#: Columns that differ between two runs of the same plan (the time) or of two plans (the
#: order, when the windows chunk the images otherwise).
VARYING = {"recorded_at"}
CHUNKED = VARYING | {"order_key"}


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    """About 2,000 rows: URLs plain and not, bad rows, duplicates far apart, local files."""
    rows = random_rows(1800, seed=5)
    rows += [dict(r, id=f"again-{i}") for i, r in enumerate(rows[:150])]  # in later chunks
    for n, name in enumerate(["a.jpg", "b.png", "c.jpg"]):
        write_image(tmp_path / "images" / name, seed=n)
        rows.append({"source": f"images/{name}", "id": f"file-{n}", "file_name": ""})
    return str(write_manifest(tmp_path / "manifest.csv", rows))


def item_run(manifest: str, ledger: Ledger, retry: bool = False) -> tuple[pa.Table, list[str]]:
    """The audit rows of a run planned at once, and the keys of the orders it drives."""
    items = load(manifest, Storage())
    found, planned = plan_and_record(items, ledger, 100, retry_failed=retry)
    rows = manifest_rows("run", manifest, items, found.known, {}, {}, ledger)
    return to_arrow(ImageRow, rows), found.resume + [o.order_key for o in planned]


def streamed_run(
    manifest: str, ledger: Ledger, work: Path, window_rows: int, retry: bool = False
) -> tuple[pa.Table, list[str], StreamRun]:
    """:func:`item_run`, streamed: read 300 rows at a time, planned ``window_rows`` at a time."""
    survey = survey_manifest(
        manifest, Storage(), ValidationOptions(), work / "rows", chunk_rows=300,
        window_rows=window_rows,
    )  # fmt: skip
    tables = RunAudit(work / "audit", "run", manifest, survey.extras)
    plan = StreamRun(
        survey, ledger, work / "windows", order_size=100, retry_failed=retry, images=tables.images
    )
    plan.triage()
    keys = []
    for number in plan.windows():
        keys += plan.commit(number)
        tables.orders.add(plan.settle({}, {}, "run"))
    assert survey.spool.on_disk == (window_rows < survey.rows)
    return pq.read_table(tables.images.finish()), keys, plan


def assert_same_audit(expected: pa.Table, got: pa.Table, varying: set[str]) -> None:
    """Both tables hold the same rows (in row order), column for column."""
    assert got.schema.names == expected.schema.names
    assert got.column("row_index").to_pylist() == sorted(got.column("row_index").to_pylist())
    for name in expected.schema.names:
        if name not in varying:
            assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


def settle_some(ledger: Ledger) -> None:
    """About a third of the planned images processed and a third failed (by key, so two
    ledgers planned otherwise settle the same images)."""
    for order in ledger.orders():
        for slot in ledger.slots(order.order_key):
            lot = int(slot.image_key[:2], 16) % 3
            if lot == 0:
                ledger.image_done(slot.image_key, f"out/{slot.file_name}", "f" * 64)
            elif lot == 1:
                ledger.image_done(slot.image_key, None, None, "DAMAGED", "it broke")


def doubled(ledger: Ledger) -> list[str]:
    """Images planned in more than one order."""
    seen = Counter(s.image_key for o in ledger.orders() for s in ledger.slots(o.order_key))
    return [key for key, n in seen.items() if n > 1]


@pytest.mark.parametrize("window_rows", [100_000, 250], ids=["one-window", "windows-on-disk"])
def test_streamed_runs_plan_and_audit_as_the_item_path(
    ledger_url: str, tmp_path: Path, manifest: str, window_rows: int
) -> None:
    reference = Ledger(tmp_path / "reference.sqlite")
    ledger = Ledger(ledger_url)
    one = window_rows > 10_000
    varying = VARYING if one else CHUNKED

    expected, expected_keys = item_run(manifest, reference)
    got, keys, plan = streamed_run(manifest, ledger, tmp_path / "first", window_rows)
    assert_same_audit(expected, got, varying)
    assert Counter(got.column("error_code").to_pylist())["DUPLICATE_ROW"] > 100
    if one:  # the same images in the same orders, with the same keys
        assert keys == expected_keys
    assert sorted(keys) == sorted(o.order_key for o in ledger.orders())
    assert sum(plan.counts.orders.values()) == len(keys)  # as its estimate counted them
    assert plan.counts.new == len(ledger.images(got.column("image_key").drop_null().to_pylist()))
    assert doubled(ledger) == []

    for led in (reference, ledger):
        settle_some(led)
    expected, expected_keys = item_run(manifest, reference)
    got, keys, _ = streamed_run(manifest, ledger, tmp_path / "rerun", window_rows)
    assert_same_audit(expected, got, varying)
    assert {"skipped", "failed", "pending"} <= set(got.column("status").to_pylist())
    held = ledger.images(got.column("image_key").drop_null().to_pylist()).values()
    assert sorted(keys) == sorted({r.order_key for r in held if r.status == "planned"})
    if one:  # each open order resumed once, in planning order
        assert keys == expected_keys

    expected, expected_keys = item_run(manifest, reference, retry=True)
    got, keys, _ = streamed_run(manifest, ledger, tmp_path / "retry", window_rows, retry=True)
    assert_same_audit(expected, got, varying)
    assert keys
    if one:  # the failed images in orders of the same new generation
        assert keys == expected_keys
    reference.close()
    ledger.close()


def test_images_another_run_planned_meanwhile_are_resumed_not_planned_again(
    ledger_url: str, tmp_path: Path, manifest: str
) -> None:
    """Two runs triage the same images before either records anything: the second to commit
    finds the first one's orders (its insert conflicts) and resumes them."""
    ledger = Ledger(ledger_url)
    runs = []
    for n in range(2):
        work = tmp_path / f"run-{n}"
        survey = survey_manifest(manifest, Storage(), ValidationOptions(), work / "rows")
        tables = RunAudit(work / "audit", f"run-{n}", manifest, survey.extras)
        run = StreamRun(survey, ledger, work / "windows", order_size=100, images=tables.images)
        run.triage()
        runs.append((run, tables))
    assert runs[0][0].counts.new == runs[1][0].counts.new > 900  # both see every image as new
    first = [key for number in runs[0][0].windows() for key in runs[0][0].commit(number)]
    runs[0][0].settle({}, {}, "run-0")
    second = [key for number in runs[1][0].windows() for key in runs[1][0].commit(number)]
    runs[1][0].settle({}, {}, "run-1")

    assert sorted(second) == sorted(first)  # resumed: not one order of its own
    assert doubled(ledger) == []
    table = pq.read_table(runs[1][1].images.finish())
    pending = table.filter(pa.compute.equal(table.column("status"), "pending"))
    assert set(pending.column("order_key").to_pylist()) == set(first)
    ledger.close()


def test_the_dry_run_counts_as_the_item_dry_run(
    ledger_url: str, tmp_path: Path, manifest: str
) -> None:
    ledger = Ledger(ledger_url)

    def both(retry: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        items = load(manifest, Storage())
        expected = dry_run(items, ledger, 100, rate=RATE, retry_failed=retry).as_dict()
        folder = tmp_path / f"dry-{retry}-{len(ledger.orders())}"
        survey = survey_manifest(manifest, Storage(), ValidationOptions(), folder, chunk_rows=300)
        plan = StreamRun(survey, ledger, folder / "windows", order_size=100, retry_failed=retry)
        plan.triage()
        return plan.estimate(rate=RATE).as_dict(), expected

    got, expected = both(retry=False)
    assert got == expected and got["new_images"] > 900 and got["bad_rows"] > 100
    item_run(manifest, ledger)
    settle_some(ledger)
    recorded = len(ledger.orders())
    for retry in (False, True):
        got, expected = both(retry)
        assert got == expected
        assert got["known_images"] > 0 and got["failed_before"] > 0 and got["in_open_orders"] > 0
    assert len(ledger.orders()) == recorded  # nothing recorded by a dry run
    ledger.close()
