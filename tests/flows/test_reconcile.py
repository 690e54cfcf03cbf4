"""``reconcile`` finishes an order whose webhook was lost; ``finalize`` twice is harmless.

Both write the outputs where the ``protect`` run that planned the orders writes them, even
when that is not the default folder beside the audit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from deployments.stack import LocalStack
from mori.batch.ledger import Ledger, ledger_location
from mori.settings import Settings


def _audit(audit: Path, table: str) -> Any:
    return ds.dataset(audit / table, partitioning="hive").to_table().to_pandas()


def test_reconcile_finishes_orders_whose_webhook_was_lost(
    prefect_api: Any, support: Any, tmp_path: Path
) -> None:
    from flows.finalize import finalize
    from flows.protect import protect
    from flows.reconcile import reconcile

    manifest = support.make_manifest(tmp_path / "batch", 4, seed=5)
    audit = tmp_path / "batch" / "audit"
    outputs = tmp_path / "elsewhere" / "protected"
    ledger_path = Path(ledger_location(str(audit), Settings()))
    with LocalStack(ledger_path, processing_seconds=0.3, faults="webhook:lose=1.0") as stack:
        first = protect(
            manifest=str(manifest),
            output=str(outputs),
            order_size=2,
            wait_timeout_seconds=0,
            completion="webhook",
        )
        assert first.count("pending") == 4
        time.sleep(1.0)  # MORI finishes; its webhooks are lost

        early = reconcile(audit=str(audit), grace_minutes=60)  # not overdue yet
        assert early.checked == 0 and not early.audit_files

        done = reconcile(audit=str(audit), grace_minutes=0)
        assert done.checked == 2 and done.finished == {"processed": 2}, done
        again = reconcile(audit=str(audit), grace_minutes=0)
        assert again.checked == 0  # nothing open any more

        ledger = Ledger(ledger_path)
        try:
            assert not ledger.open_orders()
            order_id = ledger.orders()[0].order_id
        finally:
            ledger.close()
        downloads = stack.stats()["requests"].get("get_download", 0)

        # finalize on an order reconcile already finished: read back, not downloaded again
        twice = finalize(order_id=order_id, audit=str(audit))
        assert twice.status == "skipped" and twice.images == {"skipped": 2}, twice
        assert stack.stats()["requests"].get("get_download", 0) == downloads
        stats = stack.stats()

    assert stats["files_processed"] == 4 and stats["duplicate_files"] == 0
    images, orders = _audit(audit, "images"), _audit(audit, "orders")
    reconciled = images[~images.run_id.isin({first.run_id}) & (images.status == "processed")]
    assert len(reconciled) == 4 and reconciled.output_uri.notna().all()
    assert set(images[images.status == "skipped"].order_id) == {order_id}
    assert set(orders[orders.status == "skipped"].attempts) == {0}
    assert reconciled.output_uri.str.startswith(str(outputs)).all()
    assert len(list(outputs.iterdir())) == 4
    assert not (tmp_path / "batch" / "output").exists()


def test_reconcile_without_a_ledger_does_nothing(prefect_api: Any, tmp_path: Path) -> None:
    from flows.reconcile import reconcile

    done = reconcile(audit=str(tmp_path / "nothing-yet"))
    assert done.checked == 0
    assert not (tmp_path / "nothing-yet").exists()


def test_finalize_of_an_unknown_order_fails_clearly(
    prefect_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.finalize import finalize
    from tasks import finalizing

    Ledger(tmp_path / "audit" / "ledger.sqlite").close()
    monkeypatch.setattr(finalizing.lookup_order, "retry_delay_seconds", [0, 0, 0])
    monkeypatch.setenv("MORI_API_KEY", "k")
    state = finalize(order_id="999", audit=str(tmp_path / "audit"), return_state=True)
    assert state.is_failed()
    with pytest.raises(LookupError, match="order 999 is not in the ledger"):
        state.result()
