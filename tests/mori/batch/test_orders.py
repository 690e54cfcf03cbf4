"""OrderProcessor against the real emulator over HTTP: resume from every step, expiry, failures.

No Prefect here: the processor is plain Python; these tests drive it directly.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from mori import keys
from mori.batch import manifest
from mori.batch.completion import CompletionWaiter
from mori.batch.ledger import Ledger, Slot
from mori.batch.orders import OrderProcessor, OrderSettings
from mori.batch.plan import plan_and_record, plan_orders, record_intent
from mori.batch.storage import Storage
from mori.client import MoriClient
from mori.emulator import EmulatorConfig, EmulatorServer, LocalS3
from mori.retry import RetryPolicy
from tests.support.clock import FakeClock
from tests.support.images import make_manifest

API_KEY = "orders-key"
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, deadline=10)


@dataclass
class World:
    server: EmulatorServer
    clock: FakeClock
    client: MoriClient
    ledger: Ledger
    processor: OrderProcessor
    items: list[manifest.Item]
    out: Path

    def plan(self) -> list[str]:
        orders = plan_orders([it for it in self.items if it.ok])
        record_intent(orders, self.items, self.ledger)
        return [o.order_key for o in orders]

    def stats(self) -> dict[str, int]:
        return {k: v for k, v in self.server.stats().items() if isinstance(v, int)}


@pytest.fixture
def world(s3_server: LocalS3, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    marker = request.node.get_closest_marker("emulator")
    overrides = dict(marker.kwargs) if marker else {}
    count = overrides.pop("images", 5)
    clock = FakeClock()
    config = EmulatorConfig(
        api_keys=frozenset({API_KEY}),
        processing_seconds=0.05,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_bucket=f"b-{tmp_path.name[-20:].lower().replace('_', '-')}",
        clock=clock,
        **overrides,
    )
    with EmulatorServer(config) as server:
        client = MoriClient(server.url, API_KEY, retry=FAST_RETRY, timeout=5)
        ledger = Ledger(tmp_path / "ledger.sqlite")
        storage = Storage()
        waiter = CompletionWaiter(client, ledger, use_webhooks=False, poll_interval=0.02)
        processor = OrderProcessor(
            client, ledger, storage, waiter, OrderSettings(str(tmp_path / "out"), wait_timeout=10)
        )
        items = manifest.load(str(make_manifest(tmp_path, count, seed=len(tmp_path.name))), storage)
        yield World(server, clock, client, ledger, processor, items, tmp_path / "out")
        client.close()
        ledger.close()


def _decodes(path: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(Path(path).read_bytes())) as img:
        img.load()
        return img.size


def test_one_pass_processes_every_image(world: World) -> None:
    (key,) = world.plan()
    result = world.processor.process(key)
    assert result.status == "processed"
    assert {r.status for r in result.images.values()} == {"processed"}
    by_key = {it.image_key: it for it in world.items}
    for image_key, img in result.images.items():
        assert _decodes(img.output_uri or "") == (by_key[image_key].width, by_key[image_key].height)
    assert world.ledger.order(key).status == "downloaded"
    assert world.stats()["orders_created"] == 1 and world.stats()["duplicate_files"] == 0


class Crash(BaseException):
    """The process dies here: a ``BaseException``, which nothing in the processor catches."""


def crash_in(monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> None:
    """Make ``target.method`` kill the run (undone when ``monkeypatch`` is)."""

    def die(*args: object, **kwargs: object) -> None:
        raise Crash(method)

    monkeypatch.setattr(target, method, die)


def crash_after_create(world: World, key: str) -> None:
    """Run ``key``'s order until MORI created it, then die (before any upload)."""
    with pytest.MonkeyPatch.context() as patch:
        crash_in(patch, world.processor.client, "upload")
        with pytest.raises(Crash):
            world.processor.process(key)
    assert world.ledger.order(key).status == "created"


#: Each step, and the call a run that dies right after it dies in.
STEPS = [
    ("created", "client", "upload"),
    ("uploaded", "client", "confirm_order"),
    ("confirmed", "waiter", "wait"),
    ("complete", "client", "get_download"),
]


@pytest.mark.parametrize(("stop_after", "part", "dies_in"), STEPS)
def test_resumes_from_every_step_without_a_second_order(
    world: World, stop_after: str, part: str, dies_in: str
) -> None:
    """A crash after any step: the rerun resumes with the same keys, one order, one confirm."""
    (key,) = world.plan()
    proc = world.processor
    with pytest.MonkeyPatch.context() as patch:
        crash_in(patch, getattr(proc, part), dies_in)
        with pytest.raises(Crash):
            proc.process(key)
    assert world.ledger.order(key).status == stop_after
    result = proc.process(key)  # the "rerun"
    assert result.status == "processed", result
    stats = world.stats()
    assert stats["orders_created"] == 1
    assert stats["orders_confirmed"] == 1
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == len(world.ledger.slots(key))


def test_expired_upload_urls_replace_the_order_without_duplicates(world: World) -> None:
    (key,) = world.plan()
    crash_after_create(world, key)
    world.clock.advance(1801)  # the 30-minute upload URLs lapse before the rerun
    result = world.processor.process(key)
    assert result.status == "processed"
    assert result.replaced == [key]
    old = world.ledger.order(key)
    assert old.status == "abandoned" and old.replaced_by == result.order_key
    assert world.ledger.order(result.order_key).generation == 1
    assert result.order_key == keys.order_key((s.image_key for s in world.ledger.slots(key)), 1)
    stats = world.stats()
    assert stats["orders_created"] == 2 and stats["orders_confirmed"] == 1
    assert stats["duplicate_files"] == 0
    assert world.processor.process(key).status == "processed"  # the old key follows the chain
    assert world.stats()["orders_created"] == 2


def test_an_expired_download_link_is_issued_again(world: World) -> None:
    (key,) = world.plan()
    client = world.processor.client
    real = client.get_download
    calls: list[str] = []

    def stale_then_fresh(order_id: str):  # type: ignore[no-untyped-def]
        info = real(order_id)
        calls.append(order_id)
        if len(calls) == 1:
            world.clock.advance(1801)  # the first link lapses before it is used
        return info

    client.get_download = stale_then_fresh  # type: ignore[method-assign]
    result = world.processor.process(key)
    assert result.status == "processed"
    assert len(calls) == 2


DOOMED = "d" * 64  # order names are "<prefix>-<key>" cut to 64 characters: this is the name


@pytest.mark.emulator(fail_order_names=frozenset({DOOMED}))
def test_an_order_mori_fails_fails_its_images_with_moris_code(world: World) -> None:
    (key,) = world.plan()
    world.processor.settings = OrderSettings(
        str(world.out), wait_timeout=10, order_name_prefix=DOOMED
    )
    result = world.processor.process(key)
    assert result.status == "failed"
    assert result.error_code == "PROCESSING_FAILED"
    assert {img.status for img in result.images.values()} == {"failed"}
    assert {r.status for r in world.ledger.images(result.images).values()} == {"failed"}
    assert world.ledger.order(key).status == "failed"
    assert world.processor.process(key).status == "failed"  # terminal: nothing resent
    assert world.stats()["orders_created"] == 1


@pytest.mark.emulator(fail_order_names=frozenset({DOOMED}), images=7)
def test_retry_failed_sends_failed_images_again_in_new_orders(world: World) -> None:
    """Failed for good stays failed on reruns, unless the run asks: then new orders, once."""
    (doomed,) = world.plan()
    world.processor.settings = OrderSettings(
        str(world.out), wait_timeout=10, order_name_prefix=DOOMED
    )
    assert world.processor.process(doomed).status == "failed"
    world.processor.settings = OrderSettings(str(world.out), wait_timeout=10)

    found, planned = plan_and_record(world.items, world.ledger)  # a plain rerun
    assert planned == [] and found.retried == []
    assert {rec.status for rec in found.known.values()} == {"failed"}

    found, planned = plan_and_record(world.items, world.ledger, retry_failed=True)
    assert len(found.retried) == 7 and not found.known and not found.new
    (again,) = planned
    assert again.generation == 1 and again.order_key != doomed
    assert again.order_key == keys.order_key((it.image_key or "" for it in world.items), 1)
    records = world.ledger.images(it.image_key or "" for it in world.items)
    assert {(r.status, r.order_key, r.error_code) for r in records.values()} == {
        ("planned", again.order_key, None)
    }
    assert world.ledger.order(doomed).status == "failed"  # history kept

    result = world.processor.process(again.order_key)
    assert result.status == "processed"
    assert {img.status for img in result.images.values()} == {"processed"}
    stats = world.stats()
    created, files, duplicates = (
        stats[k] for k in ("orders_created", "files_processed", "duplicate_files")
    )
    assert (created, files, duplicates) == (2, 7, 0)

    # Nothing failed is left: a second retry plans nothing, and the first retry's orders are
    # never planned again.
    found, planned = plan_and_record(world.items, world.ledger, retry_failed=True)
    assert planned == [] and found.retried == []
    assert {rec.status for rec in found.known.values()} == {"processed"}


def test_mori_refusing_an_order_fails_it_with_code_and_never_retries(world: World) -> None:
    # An order whose file name MORI rejects (the validator would never plan one; MORI decides).
    world.ledger.plan(
        "bad-order", "upload", [Slot(0, "img-x", "photo.gif", "/nope")], {"img-x": "sha256:00"}
    )
    result = world.processor.process("bad-order")
    assert result.status == "failed"
    assert result.error_code == "INVALID_REQUEST"
    assert world.ledger.images(["img-x"])["img-x"].status == "failed"
    assert world.server.stats()["requests"]["create"] == 1


def test_waiting_timeout_leaves_the_order_pending_and_a_later_call_finishes(
    world: World,
) -> None:
    (key,) = world.plan()
    world.processor.settings = OrderSettings(str(world.out), wait_timeout=0)
    first = world.processor.process(key)
    assert first.status == "pending"
    assert first.error_code == "WAITING_FOR_MORI"
    assert world.ledger.order(key).status == "confirmed"
    world.processor.settings = OrderSettings(str(world.out), wait_timeout=10)
    assert world.processor.process(key).status == "processed"
    assert world.stats()["orders_confirmed"] == 1


@pytest.mark.emulator(images=6)
def test_downloads_at_once_are_bounded_however_many_orders_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each download holds a result archive in memory: at most ``downloads_at_once`` at once."""
    orders = plan_orders([it for it in world.items if it.ok], max_files=1)
    record_intent(orders, world.items, world.ledger)
    settings = OrderSettings(str(world.out), wait_timeout=10, downloads_at_once=2)
    proc = OrderProcessor(world.client, world.ledger, Storage(), world.processor.waiter, settings)
    inside, peak, changed, release = 0, 0, threading.Condition(), threading.Event()
    download = world.client.download

    def held(url: str) -> bytes:  # a download that lasts until the test lets it finish
        nonlocal inside, peak
        with changed:
            inside += 1
            peak = max(peak, inside)
            changed.notify_all()
        try:
            release.wait(timeout=30)
            return download(url)
        finally:
            with changed:
                inside -= 1

    monkeypatch.setattr(world.client, "download", held)
    with ThreadPoolExecutor(len(orders)) as pool:
        running = [pool.submit(proc.process, o.order_key) for o in orders]
        with changed:
            assert changed.wait_for(lambda: inside == 2, timeout=30)
            # the four other orders wait for a turn
            assert not changed.wait_for(lambda: inside > 2, timeout=1)
        release.set()
        results = [r.result() for r in running]
    proc.close()
    assert [r.status for r in results] == ["processed"] * 6
    assert peak == 2
