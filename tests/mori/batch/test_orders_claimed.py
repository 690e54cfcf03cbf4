"""One driver per order: OrderProcessors with claims against the emulator over HTTP, on both
ledger backends. Two runs driving one order at once could otherwise see its upload links closed
by the other's confirm, replace it, and have MORI process its images twice."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from mori.batch import manifest
from mori.batch.claims import ClaimHolder, ClaimLost
from mori.batch.completion import CompletionWaiter
from mori.batch.ledger import Ledger
from mori.batch.orders import OrderProcessor, OrderSettings
from mori.batch.plan import plan_orders, record_intent
from mori.batch.progress import OrderEvent
from mori.batch.storage import Storage
from mori.client import MoriClient
from mori.emulator import EmulatorConfig, EmulatorServer, LocalS3
from mori.retry import RetryPolicy
from tests.support.images import make_manifest
from tests.support.leases import lapse

API_KEY = "claims-key"


@dataclass
class Run:
    """One process's view: its ledger connection, claims and processor."""

    ledger: Ledger
    claims: ClaimHolder
    processor: OrderProcessor


@dataclass
class World:
    server: EmulatorServer
    url: str
    order_key: str
    runs: list[Run]

    def stats(self) -> dict[str, int]:
        return {k: v for k, v in self.server.stats().items() if isinstance(v, int)}


@pytest.fixture
def world(ledger_url: str, tmp_path: Path, s3_server: LocalS3) -> Iterator[World]:
    """One planned order of 6 images; two "runs" (owners) ready to drive it."""
    config = EmulatorConfig(
        api_keys=frozenset({API_KEY}),
        processing_seconds=0.3,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_bucket=f"claims-{uuid.uuid4().hex[:12]}",
    )
    with EmulatorServer(config) as server:
        storage = Storage()
        items = manifest.load(str(make_manifest(tmp_path, 6, seed=7)), storage)
        runs, clients = [], []
        for owner in ("run-a:1", "run-b:2"):
            ledger = Ledger(ledger_url)
            client = MoriClient(server.url, API_KEY, retry=RetryPolicy(deadline=10), timeout=5)
            waiter = CompletionWaiter(client, ledger, use_webhooks=False, poll_interval=0.05)
            claims = ClaimHolder(ledger, owner, 30.0)
            settings = OrderSettings(str(tmp_path / "out"), wait_timeout=20)
            processor = OrderProcessor(client, ledger, storage, waiter, settings, claims=claims)
            runs.append(Run(ledger, claims, processor))
            clients.append(client)
        (order,) = plan_orders(items)
        record_intent([order], items, runs[0].ledger)
        try:
            yield World(server, ledger_url, order.order_key, runs)
        finally:
            for run, client in zip(runs, clients, strict=True):
                client.close()
                run.ledger.close()


def test_two_runs_driving_one_order_at_once_process_it_once(world: World) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda r: r.processor.process(world.order_key), world.runs))
    assert sorted(r.status for r in results) == ["processed", "skipped"]
    skipped = next(r for r in results if r.status == "skipped")
    assert {i.status for i in skipped.images.values()} == {"skipped"} and skipped.attempts == 0
    stats = world.stats()
    assert stats["orders_created"] == 1 and stats["duplicate_files"] == 0
    assert stats["files_processed"] == 6
    claim = world.runs[0].ledger.claims([world.order_key])[world.order_key]
    assert claim.released  # let go after the last step


def test_an_order_still_driven_elsewhere_at_the_end_of_the_wait_is_left_alone(
    world: World,
) -> None:
    a, b = world.runs
    assert a.claims.claim([world.order_key]) == [world.order_key]  # a drives it (and hangs)
    b.processor.settings = OrderSettings(b.processor.settings.output_uri, wait_timeout=0.3)
    left = b.processor.process(world.order_key)
    assert (left.status, left.attempts, left.error_code) == ("pending", 0, "ORDER_INCOMPLETE")
    assert left.error_message == "another process (run-a:1) drives it"
    assert {i.status for i in left.images.values()} == {"pending"}
    assert world.stats()["orders_created"] == 0


def test_a_lapsed_claim_is_taken_over_and_its_old_driver_stops(world: World) -> None:
    a, b = world.runs
    a.claims.claim([world.order_key])
    lapse(world.url)  # a's host went quiet for longer than the lease
    result = b.processor.process(world.order_key)
    assert result.status == "processed"
    a.claims.renew()  # a learns it lost the order, and stops at its next step
    with pytest.raises(ClaimLost):
        a.claims.check(world.order_key)
    stats = world.stats()
    assert stats["orders_created"] == 1 and stats["duplicate_files"] == 0
    assert b.ledger.claims([world.order_key])[world.order_key].takeovers == 1


def test_a_driver_that_lost_its_claim_mid_order_stops_before_the_next_step(
    world: World,
) -> None:
    a, b = world.runs
    created = threading.Event()

    def take_over(event: OrderEvent) -> None:
        if event.kind == "created":  # meanwhile b takes the order over
            lapse(world.url)
            assert b.claims.claim([world.order_key]) == [world.order_key]
            a.claims.renew()
            created.set()

    a.processor.observer = take_over
    with pytest.raises(ClaimLost):
        a.processor.process(world.order_key)
    assert created.is_set()
    assert world.stats()["uploads"] == 0  # a never uploaded after losing it
    assert b.processor.process(world.order_key).status == "processed"
    assert world.stats()["orders_created"] == 1 and world.stats()["duplicate_files"] == 0
