"""One ``protect`` run spread over three workers, end to end, then the same with a worker killed.

Everything real: ``prefect server start`` on PostgreSQL (a database of the embedded test
server), ``mori-pipeline bootstrap`` (work pool, the ``mori-api`` limit at R requests per
minute), the deployments of ``prefect.yaml`` (``prefect deploy --all``), three
``prefect worker start --pool mori-pool --limit 1`` processes, the emulator over HTTP limited to
R per minute per key, moto's S3, the webhook receiver, and a PostgreSQL ledger shared by all.
The ``protect`` run itself starts in this process (the machine a nightly run starts from) with
``fan_out=3``; its child runs go to the workers.

Checked: every image processed once (``duplicate_files == 0`` at the emulator), every worker
drove orders (the claims' owners name the worker that started their process), the plan's rate
held across all workers (no 429 from the emulator's own limiter, and at most R API requests in
any 60 s of the emulator's counters, sampled twice a second). Then a worker and everything it
started is SIGKILLed while its child run holds orders: the parent sees the claims lapse, hands
the group to a new child run on another worker, and every image is still processed once.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deployments.bootstrap import bootstrap
from deployments.stack import LocalStack, environment
from mori.batch.ledger import Ledger

R = 120
WORKERS = ("w1", "w2", "w3")
LEASE = 5.0
#: The emulator's endpoints behind its rate limiter (presigned transfers are not).
API_ENDPOINTS = ("create", "with_urls", "confirm", "get", "download", "webhook_register")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_prefect(
    postgres_server: Any, support: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any]]:
    """A Prefect server whose own database is PostgreSQL; its processes' helper."""
    name = postgres_server.create_database()
    url = postgres_server.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    home = tmp_path_factory.mktemp("prefect-on-postgres")
    procs = support.Processes(home)
    try:
        yield support.start_server(home, procs, PREFECT_SERVER_DATABASE_CONNECTION_URL=url), procs
    finally:
        procs.stop_all()
        postgres_server.drop_database(name)


class Sampler(threading.Thread):
    """The emulator's API request count and 429 count, twice a second."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(daemon=True, name="stats-sampler")
        self.stack = stack
        self.samples: list[tuple[float, int, int]] = []
        self.halt = threading.Event()

    def read(self) -> tuple[float, int, int]:
        stats = self.stack.stats()
        api = sum(stats["requests"].get(e, 0) for e in API_ENDPOINTS)
        return time.monotonic(), api, stats["rate_limited"]

    def run(self) -> None:
        while not self.halt.wait(0.5):
            self.samples.append(self.read())

    def most_in_a_minute(self) -> int:
        """The most API requests between two samples at most 60 s apart."""
        most = 0
        for i, (t0, n0, _) in enumerate(self.samples):
            later = [n for t, n, _ in self.samples[i:] if t - t0 <= 60.0]
            most = max(most, later[-1] - n0)
        return most


def drivers(ledger: Ledger, order_keys: list[str]) -> dict[str, str]:
    """The worker whose process drove each order last (from the claims' owners)."""
    return {k: c.owner.rpartition("@")[2] for k, c in ledger.claims(order_keys).items()}


def run_protect(manifest: Path, audit: Path) -> Any:
    """``protect`` with fan-out, in this process, in a thread (so the test can time out)."""
    from flows.protect import protect

    def run() -> Any:
        state = protect(
            manifest=str(manifest),
            audit=str(audit),
            order_size=1,
            fan_out=len(WORKERS),
            poll_interval_seconds=1.0,
            return_state=True,
        )
        assert state.is_completed(), state.message
        return state.result()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(contextvars.copy_context().run, run).result(timeout=300)


def test_three_workers_share_one_run_and_one_rate_limit(
    pg_prefect: tuple[Any, Any], support: Any, tmp_path: Path, postgres_url: str
) -> None:
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    server, procs = pg_prefect
    started = time.monotonic()
    settings = {PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with temporary_settings(updates=settings):
        bootstrap(R, home=support.REPO)
        deploy = [str(support.BIN / "prefect"), "--no-prompt", "deploy", "--all"]
        support.run_cli(deploy, server.env(), timeout=240)
        support.set_child_lease(LEASE)
        ready = time.monotonic()
        work = tmp_path / "batch"
        first = support.make_manifest(work / "first", 24, seed=51)
        second = support.make_manifest(work / "second", 24, seed=52)
        with (
            environment(MORI_LEDGER_URL=postgres_url, MORI_GLOBAL_RATE_LIMIT="mori-api"),
            LocalStack(postgres_url, processing_seconds=1.0, rpm=R) as stack,  # type: ignore[arg-type]
            Ledger(postgres_url) as ledger,
        ):
            env = support.stack_env(server)
            command = [str(support.BIN / "prefect"), "worker", "start", "--pool", "mori-pool"]
            command += ["--type", "process", "--limit", "1"]
            workers = {
                name: procs.start(f"worker-{name}", [*command, "--name", name], env)
                for name in WORKERS
            }
            for name in WORKERS:
                support.wait_for(
                    lambda n=name: "started!" in procs.log_text(f"worker-{n}"), 90, what=name
                )
            sampler = Sampler(stack)
            sampler.start()

            # 1. three workers, one run
            one = run_protect(first, work / "audit")
            one_orders = [o.order_key for o in ledger.orders()]
            one_drivers = drivers(ledger, one_orders)
            phase_one = time.monotonic()

            # 2. the same with a worker (and everything it started) killed mid-run
            created_before = stack.stats()["orders_created"]

            def kill_a_busy_worker() -> str:
                def busy() -> str | None:
                    if stack.stats()["orders_created"] <= created_before:
                        return None
                    fresh = [o.order_key for o in ledger.orders() if o.order_key not in one_drivers]
                    live = [c for c in ledger.claims(fresh).values() if c.live]
                    return live[0].owner.rpartition("@")[2] if live else None

                name: str = support.wait_for(busy, 120, 0.1, what="a worker holding orders")
                support.kill_tree(workers[name])
                return name

            with ThreadPoolExecutor(max_workers=1) as pool:
                killer = pool.submit(kill_a_busy_worker)
                two = run_protect(second, work / "audit")
                killed = killer.result(timeout=60)
            sampler.halt.set()
            sampler.join()
            stats = stack.stats()
            two_orders = [o.order_key for o in ledger.orders() if o.order_key not in one_drivers]
            two_drivers = drivers(ledger, two_orders)
            dispatches = ledger.dispatches(two.run_id)
            statuses = {o.status for o in ledger.orders()}
            children = support.child_runs(two.run_id)
        support.drain()
    end = time.monotonic()
    per_worker = {w: sum(d == w for d in one_drivers.values()) for w in WORKERS}
    print(
        f"\nsetup {ready - started:.0f} s, run 1 {phase_one - ready:.0f} s, run 2 (killed "
        f"{killed}) {end - phase_one:.0f} s; orders per worker in run 1 {per_worker}, in run 2 "
        f"{ {w: sum(d == w for d in two_drivers.values()) for w in WORKERS} }; most API requests "
        f"in 60 s {sampler.most_in_a_minute()} (R = {R}); emulator: orders_created "
        f"{stats['orders_created']}, files_processed {stats['files_processed']}, duplicate_files "
        f"{stats['duplicate_files']}, rate_limited {stats['rate_limited']}"
    )
    # run 1: every image once, every worker drove orders
    assert one.counts == {"processed": 24} and one.orders == 24
    assert all(n > 0 for n in per_worker.values()), per_worker
    # run 2: a worker died mid-run; its group went to a new child; still every image once
    assert two.counts == {"processed": 24}, two.counts
    assert any(d.attempt == 2 for d in dispatches), dispatches
    assert {c.state_name for c in children} == {"Completed", "Crashed"}
    assert killed not in {
        two_drivers[k] for d in dispatches if d.attempt == 2 for k in d.order_keys
    }
    assert statuses == {"downloaded"}
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 48
    assert stats["orders_created"] == 48  # no order re-created under another key
    # one rate budget for every worker: the emulator never refused, never over R in a minute
    assert stats["rate_limited"] == 0
    assert sampler.most_in_a_minute() <= R
