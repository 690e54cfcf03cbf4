"""Exactly once when two runs plan at the same time (invariant 1 of docs/ARCHITECTURE.md).

Two runs share one ledger (a scheduled run and a manual one, or two workers on one machine):
the second manifest is the first with rows appended, so the two plans chunk the shared images
into different orders. ``plan_run`` (triage -> plan -> record intent) must be atomic against
the other run, or both record an order holding the same images and MORI processes them twice.

The overlap is made deterministic without touching the code: the test holds the ledger's SQLite
write lock (``BEGIN IMMEDIATE`` on its own connection) while both ``plan_run`` bodies start, so
both read the ledger before either can write; then it lets go, and both orders are driven
against the emulator by the real :class:`~mori.batch.orders.OrderProcessor`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mori.batch import manifest
from mori.batch.parameters import ProtectParameters
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.settings import Settings
from tasks.planning import plan_run
from tasks.ratelimit import client_for

from .helpers import ChaosStack, ledger_query, make_corpus, write_csv


def plan_in_thread(rt: Runtime, items: list[Any], out: dict[str, Any], name: str) -> None:
    _, keys = plan_run.fn(items, rt.ledger, 100)
    out[name] = keys


def test_two_runs_planning_at_once_do_not_process_an_image_twice(tmp_path: Path) -> None:
    rows = make_corpus(tmp_path, 30, 0.0, seed=41)
    first = write_csv(tmp_path / "first.csv", rows[:20])
    second = write_csv(tmp_path / "second.csv", rows)  # the same 20 rows, plus 10
    with ChaosStack(processing_seconds=0.1) as stack:
        settings = Settings()
        runs = [
            Runtime(
                RunConfig.for_protect(
                    ProtectParameters(
                        manifest=str(m), completion="poll", poll_interval_seconds=0.2
                    ),
                    settings,
                ),
                Storage(),
                client_for(settings),
            )
            for m in (first, second)
        ]
        try:
            items = {
                name: manifest.load(rt.config.manifest_uri, rt.storage)
                for name, rt in zip(("first", "second"), runs, strict=True)
            }
            ledger_path = runs[0].config.ledger
            assert ledger_path == runs[1].config.ledger

            keys: dict[str, list[str]] = {}
            holder = sqlite3.connect(ledger_path, isolation_level=None, timeout=30)
            holder.execute("BEGIN IMMEDIATE")  # both plans read; neither can write yet
            threads = [
                threading.Thread(target=plan_in_thread, args=(rt, items[name], keys, name))
                for name, rt in zip(("first", "second"), runs, strict=True)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            holder.execute("COMMIT")
            holder.close()
            for thread in threads:
                thread.join(60)
            assert set(keys) == {"first", "second"}

            for name, rt in zip(("first", "second"), runs, strict=True):
                for key in keys[name]:
                    rt.processor.process(key)
            stats = stack.stats()
        finally:
            for rt in runs:
                rt.close()

    doubled = ledger_query(
        Path(ledger_path),
        "SELECT oi.image_key, COUNT(*) AS n FROM order_images oi JOIN orders o USING(order_key)"
        " WHERE o.status != 'abandoned' GROUP BY oi.image_key HAVING n > 1",
    )
    print(
        f"\nconcurrent plans: orders {keys}; MORI orders_created {stats['orders_created']}, "
        f"files_processed {stats['files_processed']}, duplicate_files {stats['duplicate_files']}"
    )
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == 30
    assert doubled == []
