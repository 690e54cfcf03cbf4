"""``protect`` with ``fan_out``: child runs of ``protect-orders`` drive its orders, on a real
Prefect server, in processes of their own (``deployments/serve.py --only protect-orders``: one
process per "host"), against the emulator over HTTP and moto's S3.

* the basic path: a SQLite ledger shared by the processes of one machine; one audit, written
  by the parent from the ledger;
* PostgreSQL restarted while the run and its children work: they reconnect (bounded retries)
  and nothing is lost or done twice.

A worker killed mid-run is in ``test_scale_out.py`` (real workers on a PostgreSQL-backed server).
"""

from __future__ import annotations

import contextlib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from deployments.stack import LocalStack, environment
from mori.batch.ledger import Ledger, ledger_location
from mori.settings import Settings

SERVE = [sys.executable, "-m", "deployments.serve", "--only", "protect-orders"]
CHILD = "protect-orders/protect-orders"

pytestmark = pytest.mark.slow


def serve_orders(
    processes: Any, support: Any, server: Any, name: str, audit: Path, **env: str
) -> Any:
    """A "host": a process serving ``protect-orders`` (its runs are its subprocesses)."""
    proc = processes.start(name, [*SERVE, "--audit", str(audit)], support.stack_env(server, **env))
    support.wait_for(
        lambda: "polling for scheduled runs" in processes.log_text(name),
        90,
        what=f"{name} to serve protect-orders",
    )
    return proc


def run_protect(manifest: Path, **params: Any) -> Any:
    from flows.protect import protect

    state = protect(manifest=str(manifest), return_state=True, **params)
    assert state.is_completed(), state.message
    return state.result()


def audit_images(audit: Path) -> Any:
    return ds.dataset(audit / "images", partitioning="hive").to_table().to_pandas()


def test_children_drive_the_orders_and_the_parent_writes_one_audit(
    prefect_api: Any, processes: Any, support: Any, tmp_path: Path
) -> None:
    work = tmp_path / "batch"
    manifest = support.make_manifest(work, 8, seed=31)
    audit = work / "audit"
    ledger_path = Path(ledger_location(str(audit), Settings()))
    with LocalStack(ledger_path, processing_seconds=0.3) as stack:
        serve_orders(processes, support, prefect_api, "host-a", audit)
        summary = run_protect(
            manifest, order_size=1, fan_out=2, poll_interval_seconds=0.5, max_concurrent_orders=2
        )
        stats = stack.stats()
    assert summary.counts == {"processed": 8} and summary.orders == 8
    children = support.child_runs(summary.run_id)
    assert len(children) == 2 and {c.state_name for c in children} == {"Completed"}
    assert {tuple(c.parameters["order_keys"]) for c in children} == {
        tuple(d.order_keys) for d in Ledger(ledger_path).dispatches(summary.run_id)
    }
    images = audit_images(audit)
    assert set(images.run_id) == {summary.run_id}  # children write no audit of their own
    assert len(images) == 8 and set(images.status) == {"processed"}
    assert images.attempts.eq(1).all()
    with Ledger(ledger_path) as ledger:
        claims = ledger.claims(o.order_key for o in ledger.orders())
    assert len(claims) == 8 and all(c.released for c in claims.values())
    assert len({c.owner for c in claims.values()}) == 2  # one process per child run
    runs = ds.dataset(audit / "runs", partitioning="hive").to_table().to_pandas()
    assert len(runs) == 1
    with Ledger(ledger_path) as ledger:  # the children's MORI requests count in the run's row
        children_requests = ledger.child_stats(summary.run_id)["requests"]
    # every HTTP request sent for the run (API calls, presigned uploads and downloads): the
    # parent's preflight and every child's
    sent = ("create", "confirm", "get", "download", "upload", "result")
    made = sum(stats["requests"].get(e, 0) for e in sent)
    assert int(runs.api_requests.iloc[0]) == made
    assert 8 * 5 <= children_requests < made  # create, upload, confirm, link, result per order
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 8


def test_a_postgres_restart_mid_run_loses_nothing(
    prefect_api: Any,
    processes: Any,
    support: Any,
    tmp_path: Path,
    postgres_server: Any,
    postgres_url: str,
) -> None:
    work = tmp_path / "batch"
    manifest = support.make_manifest(work, 12, seed=32)
    audit = work / "audit"
    with (
        environment(MORI_LEDGER_URL=postgres_url),
        LocalStack(postgres_url, processing_seconds=1.0) as stack,  # type: ignore[arg-type]
    ):
        serve_orders(processes, support, prefect_api, "host-a", audit)
        open_at_restart: list[int] = []

        def restart_when_busy() -> None:
            support.wait_for(lambda: stack.stats()["orders_created"] >= 2, 120, 0.1)
            with Ledger(postgres_url) as ledger:  # orders still being driven right now
                open_at_restart.append(len(ledger.open_orders()))
            postgres_server.restart()

        with ThreadPoolExecutor(max_workers=1) as pool:
            watcher = pool.submit(restart_when_busy)
            summary = run_protect(
                manifest, audit=str(audit), order_size=2, fan_out=2, poll_interval_seconds=0.5
            )
            watcher.result(timeout=60)
        stats = stack.stats()
    assert open_at_restart and open_at_restart[0] > 0  # the restart hit the run mid-way
    assert summary.counts == {"processed": 12}, summary.counts
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 12
    assert stats["orders_created"] == summary.orders == 6
    with Ledger(postgres_url) as ledger:
        assert {o.status for o in ledger.orders()} == {"downloaded"}
        assert ledger.image_statuses() == {"processed": 12}


def test_without_the_child_deployment_the_run_drives_its_orders_itself(
    prefect_api: Any, support: Any, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_deployment(client.read_deployment_by_name(CHILD).id)
    work = tmp_path / "batch"
    manifest = support.make_manifest(work, 4, seed=34)
    with LocalStack(Path(ledger_location(str(work / "audit"), Settings())), processing_seconds=0.2):
        summary = run_protect(manifest, order_size=1, fan_out=2, poll_interval_seconds=0.5)
    assert summary.counts == {"processed": 4}
    assert support.child_runs(summary.run_id) == []
