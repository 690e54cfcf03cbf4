"""Exactly once across SIGKILL and a changed rerun (invariants 1 and 3 of docs/ARCHITECTURE.md).

Each seeded trial: one emulator + S3 + webhook receiver that live across the kill and the rerun
(MORI's idempotency memory survives, as it would at MORI); the pipeline runs as a SUBPROCESS
against the harness's Prefect API and is SIGKILLed at a seeded moment. Kill modes:

* ``confirm-hang``: every confirm hangs (``confirm:timeout=1.0``); killed once a confirm was
  attempted, i.e. an order is created and uploaded but not confirmed at MORI;
* ``confirm-drop``: every confirm is processed but never answered; killed after the first, so
  MORI has confirmed an order the ledger still has as ``uploaded``;
* ``create-drop``: every create is processed but never answered; killed after two, so MORI has
  orders the ledger never heard of (``planned``);
* ``expire``: killed mid-upload, then the emulator's clock jumps 2 h, so the rerun finds the
  created orders' upload URLs expired and must replace them (new generation, new key);
* ``event``: killed when a random counter (orders created, uploads, confirms, downloads)
  reaches a random threshold;
* ``time``: killed at a random moment (startup, planning, any step).

The fault plan is swapped for the rerun (the live ``Emulator``'s ``faults``), which runs
in-process on the same manifest with extra rows appended and the original rows shuffled. Then:
no duplicate at MORI, every row ``processed`` or ``skipped``, MORI created exactly the orders the
ledger planned (no order re-created under a new key except replacements of orders whose upload
URLs expired, which MORI never confirmed), no image in two confirmed orders.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployments.stack import static_files

from .helpers import (
    VENV_BIN,
    ChaosStack,
    audit_table,
    child_env,
    decodes,
    ledger_for,
    ledger_query,
    make_corpus,
    write_csv,
)

ORDER_SIZE = 50
URL_SHARE = 0.25
LIGHT_FAULTS = "any:503=0.03,any:reset=0.03"
#: The run's preflight probes the confirm route once (an empty body, no side effect at MORI);
#: the emulator counts it, and injects the confirm faults into it too.
PREFLIGHT_CONFIRMS = 1
#: Seeded trials; the first few always kill between create and confirm.
MODES = (
    "confirm-hang",
    "confirm-hang",
    "confirm-drop",
    "create-drop",
    "expire",
    "expire",
    "event",
    "event",
    "time",
    "time",
)
CHILD = """
import sys
from flows.protect import protect

protect(
    manifest=sys.argv[1],
    order_size=int(sys.argv[2]),
    allowed_private_hosts=[sys.argv[3]],
    completion="poll",
    poll_interval_seconds=0.3,
    max_concurrent_orders=4,
)
"""


@dataclass
class Plan:
    mode: str
    faults: str
    rerun_faults: str
    hang: float
    kill_when: Callable[[dict[str, Any]], bool] | None
    kill_at: float | None
    extra_delay: float
    advance_clock: float = 0.0


def plan_for(trial: int, rng: random.Random, upload_files: int, orders: int) -> Plan:
    mode = MODES[trial]
    delay = rng.uniform(0.0, 0.3)
    if mode == "confirm-hang":
        return Plan(
            mode,
            "confirm:timeout=1.0",
            "",
            30.0,
            lambda s: s["requests"].get("confirm", 0) >= 1 + PREFLIGHT_CONFIRMS,
            None,
            delay,
        )
    if mode == "confirm-drop":
        return Plan(
            mode,
            "confirm:drop=1.0",
            "",
            2.5,
            lambda s: s["requests"].get("confirm", 0) >= 2 + PREFLIGHT_CONFIRMS,
            None,
            delay,
        )
    if mode == "create-drop":
        return Plan(
            mode,
            "create:drop=1.0,with_urls:drop=1.0",
            "",
            2.5,
            lambda s: s["orders_created"] >= 2,
            None,
            delay,
        )
    if mode == "expire":
        limit = rng.randint(5, 25)
        return Plan(
            f"expire:uploads>={limit}",
            "",
            "",
            2.5,
            lambda s: s["uploads"] >= limit,
            None,
            0.0,
            advance_clock=7200.0,
        )
    if mode == "event":
        metric, limit = rng.choice(
            [
                ("orders_created", rng.randint(1, orders)),
                ("uploads", rng.randint(1, upload_files)),
                ("orders_confirmed", rng.randint(1, orders)),
                ("downloads", rng.randint(1, max(1, orders - 1))),
            ]
        )
        return Plan(
            f"event:{metric}>={limit}",
            LIGHT_FAULTS,
            LIGHT_FAULTS,
            2.5,
            lambda s: s[metric] >= limit,
            None,
            delay,
        )
    return Plan("time", LIGHT_FAULTS, LIGHT_FAULTS, 2.5, None, rng.uniform(1.0, 2.5), 0.0)


def run_and_kill(
    stack: ChaosStack, plan: Plan, args: list[str], env: dict[str, str], log: Path
) -> dict[str, Any]:
    """Start the pipeline subprocess, SIGKILL it per ``plan``; what happened."""
    started = time.monotonic()
    with log.open("w") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while child.poll() is None:
                now = time.monotonic() - started
                if plan.kill_at is not None and now >= plan.kill_at:
                    break
                if plan.kill_when is not None and plan.kill_when(stack.stats()):
                    time.sleep(plan.extra_delay)
                    break
                if now > 90:
                    raise AssertionError(f"{plan.mode}: kill condition never met")
                time.sleep(0.02)
            at_kill = stack.stats()
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(10)
    return {
        "killed": child.returncode == -signal.SIGKILL,
        "seconds": round(time.monotonic() - started, 2),
        "at_kill": {
            k: at_kill[k] for k in ("orders_created", "uploads", "orders_confirmed", "downloads")
        },
    }


def rerun(manifest: Path, host: str) -> Any:
    from flows.protect import protect

    state = protect(
        manifest=str(manifest),
        order_size=ORDER_SIZE,
        allowed_private_hosts=[host],
        completion="auto",
        poll_interval_seconds=0.3,
        wait_timeout_seconds=120,
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state.result()


#: The trials that also run with a PostgreSQL ledger: one of each way to kill.
POSTGRES_TRIALS = (0, 3, 4, 8)
CASES = [pytest.param(t, "sqlite", id=f"{t}-sqlite") for t in range(len(MODES))] + [
    pytest.param(t, "postgresql", id=f"{t}-postgresql") for t in POSTGRES_TRIALS
]


@pytest.mark.slow
@pytest.mark.parametrize(("trial", "backend"), CASES)
def test_kill_then_changed_rerun_is_exactly_once(
    trial: int,
    backend: str,
    prefect: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(7000 + trial)
    count = rng.randint(120, 170)
    rows = make_corpus(tmp_path, count, URL_SHARE, seed=rng.randrange(1 << 30), prefix="a")
    n_urls = sum(r["source"].startswith("http") for r in rows)
    orders = -(-(count - n_urls) // ORDER_SIZE) + -(-n_urls // ORDER_SIZE)
    plan = plan_for(trial, rng, count - n_urls, orders)
    audit = tmp_path / "audit"
    ledger = ledger_for(backend, tmp_path, request)
    if backend == "postgresql":  # the killed child's and the rerun's ledger
        monkeypatch.setenv("MORI_LEDGER_URL", str(ledger))

    with static_files(tmp_path / "web") as host:
        manifest = write_csv(tmp_path / "manifest.csv", rows, host)
        with ChaosStack(
            ledger_path=ledger,
            faults=plan.faults,
            seed=trial,
            url_hosts=frozenset({host}),
            fault_hang_seconds=plan.hang,
        ) as stack:
            args = [
                str(VENV_BIN / "python"),
                "-c",
                CHILD,
                str(manifest),
                str(ORDER_SIZE),
                host,
            ]
            kill = run_and_kill(
                stack, plan, args, child_env(prefect, stack.env), tmp_path / "child.log"
            )
            killed_audit = audit_table(audit, "images")

            # The rerun: new fault plan, original rows shuffled, extra rows appended.
            stack.set_faults(plan.rerun_faults, seed=trial + 100)
            stack.clock_offset += plan.advance_clock
            extra = make_corpus(
                tmp_path, rng.randint(15, 40), URL_SHARE, rng.randrange(1 << 30), prefix="b"
            )
            shuffled = rows[:]
            rng.shuffle(shuffled)
            manifest = write_csv(tmp_path / "manifest.csv", shuffled + extra, host)
            t_rerun = time.monotonic()
            summary = rerun(manifest, host)
            t_rerun = time.monotonic() - t_rerun
            stats = stack.stats()

    total = count + len(extra)
    orders_rows = ledger_query(
        ledger, "SELECT order_key, order_id, status, generation, replaced_by FROM orders"
    )
    live = [o for o in orders_rows if o["status"] != "abandoned"]
    abandoned = [o for o in orders_rows if o["status"] == "abandoned"]
    print(
        f"\ntrial {trial} {plan.mode}: {count}+{len(extra)} images, {orders} planned orders; "
        f"killed={kill['killed']} after {kill['seconds']} s at {kill['at_kill']}; rerun "
        f"{summary.counts}; MORI orders_created {stats['orders_created']}, confirmed "
        f"{stats['orders_confirmed']}, replays {stats['idempotent_replays']}, replaced "
        f"{len(abandoned)}, "
        f"duplicate_files {stats['duplicate_files']}; rerun took {t_rerun:.1f} s"
    )
    assert kill["killed"], f"the child finished before the kill ({plan.mode})"
    if plan.mode == "confirm-hang":  # killed between create and confirm
        assert kill["at_kill"]["orders_created"] > kill["at_kill"]["orders_confirmed"]

    # MORI processed every image once, and only once.
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == total

    # Every row of the rerun ends processed or skipped; one outcome per row.
    images = audit_table(audit, "images")
    assert summary.rows == total
    assert set(summary.counts) <= {"processed", "skipped"}, summary.counts
    mine = images[images.run_id == summary.run_id]
    assert len(mine) == mine.row_index.nunique() == total
    assert set(mine.status) <= {"processed", "skipped"}
    if len(killed_audit):  # the child finished its audit just before the kill
        assert set(killed_audit.run_id).isdisjoint({summary.run_id})

    # MORI created exactly the orders the ledger planned: none re-created under a new key,
    # except replacements (the abandoned order was created, never confirmed).
    assert all(o["status"] == "downloaded" for o in live), [
        dict(o) for o in live if o["status"] != "downloaded"
    ]
    if plan.advance_clock:
        assert abandoned, "no order had to be replaced after its upload URLs expired"
        live_keys = {o["order_key"] for o in live}
        assert all(o["replaced_by"] in live_keys for o in abandoned)
    else:
        assert abandoned == []
    ids = [o["order_id"] for o in orders_rows]
    assert None not in ids and len(set(ids)) == len(ids)
    assert stats["orders_created"] == len(orders_rows)
    assert stats["orders_confirmed"] == len(live)

    # No image in two confirmed orders; every image of the manifest processed in the ledger.
    doubled = ledger_query(
        ledger,
        "SELECT oi.image_key, COUNT(*) AS n FROM order_images oi JOIN orders o USING(order_key)"
        " WHERE o.status != 'abandoned' GROUP BY oi.image_key HAVING COUNT(*) > 1",
    )
    assert doubled == []
    statuses = ledger_query(ledger, "SELECT status, COUNT(*) AS n FROM images GROUP BY status")
    assert {r["status"]: r["n"] for r in statuses} == {"processed": total}

    # Every output decodes (read through the audit's pointers).
    for uri in mine.output_uri:
        assert decodes(Path(uri).read_bytes()) == (64, 48)
