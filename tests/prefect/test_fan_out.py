"""``protect`` with ``fan_out``: child runs of ``protect-orders`` drive its orders, on a real
Prefect server, in processes of their own (``deployments/serve.py --only protect-orders``: one
process per "host"), against the emulator over HTTP and moto's S3.

* the basic path: a SQLite ledger shared by the processes of one machine; one audit, written
  by the parent from the ledger;
* PostgreSQL restarted while the run and its children work: they reconnect (bounded retries)
  and nothing is lost or done twice;
* a "host" killed (its whole process tree, SIGKILL) while its child run holds orders: the
  parent sees the claims lapse, hands the group to a new child run on the other host, and MORI
  still processes every image once.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from deployments.stack import LocalStack, environment
from mori.batch.ledger import Ledger, ledger_location
from mori.settings import Settings

SERVE = [sys.executable, "-m", "deployments.serve", "--only", "protect-orders"]

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
        restarted = threading.Event()

        def restart_when_busy() -> None:
            support.wait_for(lambda: stack.stats()["orders_created"] >= 2, 120, 0.1)
            postgres_server.restart()
            restarted.set()

        with ThreadPoolExecutor(max_workers=1) as pool:
            watcher = pool.submit(restart_when_busy)
            summary = run_protect(
                manifest, audit=str(audit), order_size=2, fan_out=2, poll_interval_seconds=0.5
            )
            watcher.result(timeout=60)
        stats = stack.stats()
    assert restarted.is_set()
    assert summary.counts == {"processed": 12}, summary.counts
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 12
    assert stats["orders_created"] == summary.orders == 6
    with Ledger(postgres_url) as ledger:
        assert {o.status for o in ledger.orders()} == {"downloaded"}
        assert ledger.image_statuses() == {"processed": 12}


def test_a_dead_host_s_orders_move_to_another_host(
    prefect_api: Any, processes: Any, support: Any, tmp_path: Path, postgres_url: str
) -> None:
    work = tmp_path / "batch"
    manifest = support.make_manifest(work, 12, seed=33)
    audit = work / "audit"
    with (
        environment(MORI_LEDGER_URL=postgres_url),
        LocalStack(postgres_url, processing_seconds=4.0) as stack,  # type: ignore[arg-type]
        Ledger(postgres_url) as ledger,
    ):
        hosts = {
            name: serve_orders(processes, support, prefect_api, name, audit)
            for name in ("host-a", "host-b")
        }
        support.set_child_lease(4.0)

        def kill_a_driving_host() -> str:
            def busy_owner() -> str | None:
                claims = ledger.claims(o.order_key for o in ledger.orders())
                live = [c for c in claims.values() if c.live]
                return live[0].owner if live and stack.stats()["orders_created"] else None

            owner = support.wait_for(busy_owner, 120, 0.1, what="a child holding orders")
            pid = int(owner.split("@")[0].rsplit(":", 1)[1])
            name = next(n for n, p in hosts.items() if pid in support.descendants(p.pid))
            support.kill_tree(hosts[name])
            return name

        with ThreadPoolExecutor(max_workers=1) as pool:
            killed = pool.submit(contextvars.copy_context().run, kill_a_driving_host)
            started = time.monotonic()
            summary = run_protect(
                manifest, audit=str(audit), order_size=2, fan_out=2, poll_interval_seconds=0.5
            )
            took = time.monotonic() - started
            dead = killed.result(timeout=60)
        stats = stack.stats()
        claims = ledger.claims(o.order_key for o in ledger.orders())
        dispatches = ledger.dispatches(summary.run_id)
    print(f"\nkilled {dead}; run took {took:.1f} s; dispatches {dispatches}")
    assert summary.counts == {"processed": 12}, summary.counts
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 12
    assert stats["orders_created"] == 6  # the lost child's orders kept their MORI keys
    handed_on = [d for d in dispatches if d.attempt == 2]  # groups that went to a new child
    assert handed_on and max(d.attempt for d in dispatches) == 2
    assert all(claims[k].takeovers == 1 for d in handed_on for k in d.order_keys)
    states = Counter(c.state_name for c in support.child_runs(summary.run_id))
    assert states == {"Crashed": len(handed_on), "Completed": len(dispatches)}  # lost: marked
