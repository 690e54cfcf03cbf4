"""``retry_failed``: images MORI failed stay failed on reruns until a run asks to retry them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from deployments.cli import main
from deployments.stack import LocalStack
from mori.batch.ledger import ledger_location
from mori.batch.manifest import load
from mori.batch.plan import plan_orders
from mori.batch.storage import Storage
from mori.settings import Settings


def test_failed_images_are_sent_again_only_when_asked(
    prefect_api: Any, support: Any, tmp_path: Path
) -> None:
    from flows.protect import protect

    manifest = support.make_manifest(tmp_path / "batch", 4, seed=9)
    audit = tmp_path / "batch" / "audit"
    first_order, _ = plan_orders(load(str(manifest), Storage()), 2)
    doomed = f"mori-pipeline-{first_order.order_key[:8]}"  # its name at MORI, which fails it
    doomed_images = {s.image_key for s in first_order.slots}
    ledger = Path(ledger_location(str(audit), Settings()))
    with LocalStack(ledger, processing_seconds=0.1, fail_order_names=frozenset({doomed})) as stack:
        first = protect(manifest=str(manifest), order_size=2, completion="poll")
        assert first.counts == {"processed": 2, "failed": 2}, first.counts
        rerun = protect(manifest=str(manifest), order_size=2, completion="poll")
        assert rerun.counts == {"skipped": 2, "failed": 2}, rerun.counts
        args = ["run", "--manifest", str(manifest), "--order-size", "2", "--completion", "poll"]
        assert main([*args, "--retry-failed"]) == 0  # as a user retries them
        stats = stack.stats()

    assert (stats["orders_created"], stats["orders_failed"], stats["duplicate_files"]) == (3, 1, 0)
    images = ds.dataset(audit / "images", partitioning="hive").to_table().to_pandas()
    by_run = {run: rows for run, rows in images.groupby("run_id")}
    again = by_run[rerun.run_id]
    failed_again = again[again.status == "failed"]
    assert set(failed_again.image_key) == doomed_images
    assert failed_again.error_message.str.contains("--retry-failed").all()
    assert (failed_again.attempts == 0).all()
    (retry_run,) = set(by_run) - {first.run_id, rerun.run_id}
    retried = by_run[retry_run]
    assert retried.status.value_counts().to_dict() == {"skipped": 2, "processed": 2}
    assert set(retried[retried.status == "processed"].image_key) == doomed_images
    assert retried[retried.status == "processed"].output_uri.notna().all()
