"""The demo, end to end: emulator + moto S3 + receiver over real HTTP, through Prefect."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
from PIL import Image

from deployments.demo import run_demo
from mori.emulator.imaging import psnr

COUNT = 12


@pytest.fixture(scope="module")
def demo(prefect: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    workdir = tmp_path_factory.mktemp("demo")
    first, first_stats = run_demo(workdir, COUNT, processing_seconds=0.2)
    second, second_stats = run_demo(workdir, COUNT, processing_seconds=0.2)
    return {
        "workdir": workdir,
        "first": first,
        "first_stats": first_stats,
        "second": second,
        "second_stats": second_stats,
    }


def audit_images(workdir: Path) -> pd.DataFrame:
    dataset = ds.dataset(workdir / "audit" / "images", format="parquet", partitioning="hive")
    return dataset.to_table().to_pandas()


def test_first_run_processes_every_sample_exactly_once(demo: dict) -> None:
    summary, stats = demo["first"], demo["first_stats"]
    assert summary.count("processed") == COUNT, summary.counts
    assert summary.rows == COUNT
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == COUNT
    assert stats["orders_created"] == summary.orders == 2  # one upload order, one URL order


def test_second_run_skips_everything_and_creates_no_order(demo: dict) -> None:
    summary, stats = demo["second"], demo["second_stats"]
    assert summary.count("skipped") == COUNT, summary.counts
    assert stats["orders_created"] == 0
    assert stats["files_processed"] == 0


def test_audit_has_one_outcome_per_row_per_run(demo: dict) -> None:
    images = audit_images(demo["workdir"])
    assert len(images) == 2 * COUNT
    per_run = images.groupby("run_id")["row_index"].agg(["count", "nunique"])
    assert (per_run["count"] == COUNT).all() and (per_run["nunique"] == COUNT).all()
    first = images[images.run_id == demo["first"].run_id]
    assert set(first.status) == {"processed"}
    assert first.order_id.notna().all() and first.output_sha256.notna().all()
    assert first.completed_at.notna().all() and first.downloaded_at.notna().all()
    assert (first.schema_version == 1).all()
    assert set(images.run_date.astype(str)) == {pd.Timestamp.now("UTC").date().isoformat()}
    skipped = images[images.run_id == demo["second"].run_id].set_index("row_index")
    assert (skipped.output_uri == first.set_index("row_index").output_uri).all()
    assert "collection" in images.columns  # extra manifest columns carried through
    orders = ds.dataset(demo["workdir"] / "audit" / "orders", partitioning="hive").to_table()
    assert orders.num_rows == 2


def test_outputs_decode_match_dimensions_and_differ(demo: dict) -> None:
    workdir = demo["workdir"]
    first = audit_images(workdir)
    first = first[first.run_id == demo["first"].run_id]
    for row in first.itertuples():
        out = Path(row.output_uri).read_bytes()
        with Image.open(io.BytesIO(out)) as img:
            img.load()
            size = img.size
        if row.source.startswith("http"):
            src = (workdir / "web" / row.file_name).read_bytes()
        else:
            src = (workdir / row.source).read_bytes()
        with Image.open(io.BytesIO(src)) as original:
            assert size == original.size
            if row.width is not None and row.width == row.width:  # not NaN: a file row
                assert (row.width, row.height) == original.size
        assert out != src
        assert psnr(src, out) >= 35


def test_the_same_demo_runs_against_the_current_api_generation(
    prefect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """G3 routes, body idempotency keys, ``whsec_`` secrets and ``X-MoriBiz-Signature``
    webhooks: nothing above the SDK changes."""
    monkeypatch.setenv("MORI_API_GENERATION", "g3")
    summary, stats = run_demo(tmp_path, 6, processing_seconds=0.2)
    assert summary.count("processed") == 6, summary.counts
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 6
    assert stats["requests"].get("create", 0) >= 2
    assert not any(name.startswith(("with_urls", "webhook_get")) for name in stats["requests"])
    again, _ = run_demo(tmp_path, 6, processing_seconds=0.2)
    assert again.count("skipped") == 6, again.counts
