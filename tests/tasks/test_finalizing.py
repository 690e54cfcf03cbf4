"""The plain parts of finishing orders: hand-off to a live protect run, audit rows, lookup."""

from __future__ import annotations

from pathlib import Path

from mori.batch.ledger import Ledger, Slot
from mori.batch.orders import ImageResult, OrderResult
from mori.batch.runtime import RunConfig
from mori.settings import Settings
from tasks.finalizing import audit_tables, await_handoff


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "audit" / "ledger.sqlite")
    slots = [Slot(0, "img-a", "a.png", "/src/a.png", 4, 3), Slot(1, "img-b", "b.png", "/src/b.png")]
    ledger.plan("key-1", "upload", slots, {"img-a": "sha256:aa", "img-b": "sha256:bb"})
    ledger.advance("key-1", "created", order_id="ord-1")
    ledger.advance("key-1", "confirmed")
    return ledger


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1


def test_handoff_waits_only_for_an_order_someone_is_downloading(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    clock = Clock()
    record = ledger.order("key-1")
    assert await_handoff.fn(ledger, record, 60, clock=clock, sleep=clock.sleep) == record
    assert clock.sleeps == 0  # confirmed: nobody is on it

    ledger.advance("key-1", "complete")

    def sleep_then_done(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.sleeps == 3:
            ledger.advance("key-1", "downloaded")

    done = await_handoff.fn(ledger, ledger.order("key-1"), 60, clock=clock, sleep=sleep_then_done)
    assert done.status == "downloaded" and clock.sleeps == 3
    ledger.close()


def test_handoff_gives_up_after_its_grace(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.advance("key-1", "complete")
    clock = Clock()
    record = await_handoff.fn(ledger, ledger.order("key-1"), 5, clock=clock, sleep=clock.sleep)
    assert record.status == "complete" and clock.now >= 5
    ledger.close()


def test_lookup_by_mori_order_id_and_audit_rows(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    assert ledger.order_by_id("ord-1") == ledger.order("key-1")
    assert ledger.order_by_id("ord-404") is None
    result = OrderResult(
        "key-1",
        "upload",
        "processed",
        "ord-1",
        images={
            "img-a": ImageResult("img-a", "processed", "/out/a.png", "cafe"),
            "img-b": ImageResult("img-b", "failed", error_code="OUTPUT_MISSING", error_message="x"),
        },
    )
    orders, images = audit_tables("run-1", {"key-1": result}, set(), ledger)
    assert [r.status for r in images] == ["processed", "failed"]
    assert images[0].sha256 == "aa" and images[0].width == 4
    assert orders[0].status == "processed" and orders[0].attempts == 1
    # what the processor recorded; a later run finds the order final
    ledger.image_done("img-a", "/out/a.png", "cafe")
    ledger.image_done("img-b", None, None, "OUTPUT_MISSING", "x")
    ledger.advance("key-1", "downloaded")
    orders, images = audit_tables("run-2", {"key-1": result}, {"key-1"}, ledger)
    assert [r.status for r in images] == ["skipped", "failed"]
    message = images[1].error_message or ""
    assert "earlier run" in message and "--retry-failed" in message
    assert orders[0].status == "skipped" and orders[0].attempts == 0
    ledger.close()


def test_output_defaults_beside_the_audit(tmp_path: Path) -> None:
    settings = Settings(ledger_url=None, ledger_path=None)

    def order_config(audit: str, output: str | None = None) -> RunConfig:
        return RunConfig.for_orders(audit, output, settings, wait_timeout=0)

    config = order_config(str(tmp_path / "m" / "audit"))
    assert config.output_uri == str(tmp_path / "m" / "output")
    assert config.ledger == str(tmp_path / "m" / "audit" / "ledger.sqlite")
    s3 = order_config("s3://bucket/m/audit", "s3://bucket/out")
    assert (s3.audit_uri, s3.output_uri) == ("s3://bucket/m/audit", "s3://bucket/out")
    assert order_config("s3://bucket/m/audit").output_uri == "s3://bucket/m/output"
