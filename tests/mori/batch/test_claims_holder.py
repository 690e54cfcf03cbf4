"""ClaimHolder (claim, renew in the background, release) and orders' results from the ledger."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mori.batch.claims import ClaimHolder, ClaimLost, host_id, owner_name, process_exists
from mori.batch.ledger import Ledger, Slot
from mori.batch.results import result_from_ledger
from tests.support.leases import lapse


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    led = Ledger(ledger_url)
    for key in ("k1", "k2"):
        led.plan(key, "url", [Slot(0, f"i-{key}", "a.jpg", f"https://h/{key}")], {f"i-{key}": "f"})
    yield led
    led.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Unreachable:
    """A ledger whose renewals fail (the database is down), otherwise the real one."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.down = False

    def renew_claims(self, *args: Any) -> list[str]:
        if self.down:
            raise ConnectionError("the database is restarting")
        return self.ledger.renew_claims(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


def test_owner_names_say_host_process_and_worker() -> None:
    assert re.fullmatch(r".+:\d+", owner_name())
    assert owner_name("w2").endswith("@w2")


def test_a_holder_learns_it_lost_a_claim_and_stops(ledger: Ledger, ledger_url: str) -> None:
    holder = ClaimHolder(ledger, "a:1", 30.0, "run/0/1")
    assert holder.claim(["k1", "k2"]) == ["k1", "k2"]
    holder.renew()
    holder.check()  # nothing lost
    with Ledger(ledger_url) as other:
        assert other.claim(["k1"], "b:2", 30.0) == []  # live: not taken
        lapse(ledger_url)
        assert other.claim(["k1"], "b:2", 30.0) == ["k1"]
    holder.renew()
    assert holder.lost == {"k1"} and holder.held == ["k2"]
    holder.check("k2")  # still ours
    with pytest.raises(ClaimLost, match="lost its claim of order k1"):
        holder.check("k1")
    with pytest.raises(ClaimLost):
        holder.check()  # any
    holder.release()
    claims = ledger.claims(["k1", "k2"])
    assert (claims["k1"].owner, claims["k1"].live) == ("b:2", True)  # not ours to release
    assert claims["k2"].released


def a_gone_process() -> int:
    """The id of a process of this host that has ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("same_host", "alive", "taken"),
    [(True, False, True), (True, True, False), (False, False, False)],
)
def test_a_claim_of_a_gone_process_of_this_host_is_taken_at_once(
    ledger: Ledger, same_host: bool, alive: bool, taken: bool
) -> None:
    """Only this host can tell one of its processes is gone; others wait for the lease."""
    pid = os.getppid() if alive else a_gone_process()
    host = host_id() if same_host else "another-host"
    assert ledger.claim(["k1"], f"h:{pid}", 60.0, host_id=host, pid=pid) == ["k1"]
    assert process_exists(pid) is alive
    holder = ClaimHolder(ledger, "me:1", 60.0)
    assert holder.claim(["k1"]) == (["k1"] if taken else [])
    claim = ledger.claims(["k1"])["k1"]
    assert (claim.owner, claim.takeovers) == (("me:1", 1) if taken else (f"h:{pid}", 0))
    if taken:
        assert (claim.host_id, claim.pid) == (host_id(), os.getpid())


def test_an_unreachable_ledger_loses_the_claims_after_a_whole_lease(ledger: Ledger) -> None:
    clock, flaky = Clock(), Unreachable(ledger)
    holder = ClaimHolder(flaky, "a:1", 30.0, clock=clock)  # type: ignore[arg-type]
    holder.claim(["k1"])
    flaky.down = True
    clock.now = 29.0
    holder.renew()
    holder.check()  # not yet: nobody can have taken it over
    clock.now = 31.0
    holder.renew()
    with pytest.raises(ClaimLost):
        holder.check()
    flaky.down = False


class ReleasedMeanwhile:
    """A ledger in which the holder releases ``key`` while a renewal is under way."""

    def __init__(self, ledger: Ledger, key: str) -> None:
        self.ledger, self.key = ledger, key
        self.holder: ClaimHolder | None = None

    def renew_claims(self, *args: Any) -> list[str]:
        assert self.holder is not None
        self.holder.release([self.key])  # the order finished: its claim goes
        return self.ledger.renew_claims(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


def test_a_claim_released_during_a_renewal_is_not_lost(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    racing = ReleasedMeanwhile(ledger, "k1")
    holder = ClaimHolder(racing, "a:1", 30.0)  # type: ignore[arg-type]
    racing.holder = holder
    assert holder.claim(["k1", "k2"]) == ["k1", "k2"]
    holder.renew()
    assert holder.lost == set() and holder.held == ["k2"]
    assert "taken over" not in caplog.text
    holder.check()


def test_the_block_renews_in_the_background_and_releases_at_the_end(ledger: Ledger) -> None:
    with ClaimHolder(ledger, "a:1", 1.5) as holder:  # renewed every 0.5 s
        holder.claim(["k1"])
        last = ledger.claims(["k1"])["k1"].lease_left
        renewed = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not renewed:
            time.sleep(0.1)
            left = ledger.claims(["k1"])["k1"].lease_left
            renewed, last = left > last + 0.05, left  # the lease grew: a renewal
        assert renewed, "the lease was never renewed"
    assert ledger.claims(["k1"])["k1"].released
    with pytest.raises(ValueError):
        ClaimHolder(ledger, "a:1", 0)


def test_results_from_the_ledger_follow_replacements_and_splits(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        slots = [Slot(i, f"i{i}", f"{i}.jpg", f"https://h/{i}") for i in range(3)]
        ledger.plan("a", "url", slots, {s.image_key: "f" for s in slots})
        ledger.advance("a", "created", order_id="ord-1")
        ledger.image_done("i1", None, None, "FILE_FAILED", "MORI could not read it")
        survivors = [Slot(0, "i0", "0.jpg", "https://h/0"), Slot(1, "i2", "2.jpg", "https://h/2")]
        ledger.replace("a", "b", survivors, 1)

        pending = result_from_ledger(ledger, "a")
        assert (pending.order_key, pending.status, pending.replaced) == ("b", "pending", ["a"])
        assert pending.error_message == "order b is planned; a later run resumes it"
        assert {k: i.status for k, i in pending.images.items()} == {
            "i0": "pending",
            "i2": "pending",
            "i1": "failed",
        }
        assert result_from_ledger(ledger, "a", "child gone").images["i0"].error_message == (
            "child gone"
        )

        ledger.advance("b", "created", order_id="ord-2")
        for key in ("i0", "i2"):
            ledger.image_done(key, f"/out/{key}.jpg", "0" * 64)
        ledger.advance("b", "downloaded")
        done = result_from_ledger(ledger, "a")
        assert (done.status, done.order_id, done.error_code) == ("processed", "ord-2", None)
        assert done.images["i2"].output_uri == "/out/i2.jpg"
        assert done.images["i1"].error_code == "FILE_FAILED"
        assert done.record is not None and done.record.status == "downloaded"

        ledger.plan("c", "url", [Slot(0, "i9", "9.jpg", "https://h/9")], {"i9": "f"})
        ledger.fail_order("c", "REJECTED", "bad order")
        failed = result_from_ledger(ledger, "c")
        assert (failed.status, failed.error_code, failed.images["i9"].status) == (
            "failed",
            "REJECTED",
            "failed",
        )
