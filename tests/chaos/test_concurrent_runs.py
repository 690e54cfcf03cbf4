"""Exactly once when two runs plan at the same time (invariant 1 of docs/ARCHITECTURE.md).

Two runs share one ledger (a scheduled run and a manual one, two workers, two hosts): when one
manifest is the other with rows appended, the two plans chunk the shared images into different
orders, so ``plan_run`` (triage -> plan -> record intent) must be atomic against the other run,
or both record an order holding the same images and MORI processes them twice.

The overlap is forced and then **proven**, never assumed: the test holds the ledger's planning
lock itself (SQLite: ``BEGIN IMMEDIATE`` on a connection of its own; PostgreSQL: a transaction
holding the planning advisory lock) while both runs start planning, and lets go only once it has
seen both of them waiting for that lock inside planning at the same moment:

* runs in threads of this process: both threads' stacks are inside ``plan_and_record``, at the
  statement that takes the lock (SQLite and PostgreSQL);
* runs in two processes (two "hosts", PostgreSQL): ``pg_locks`` shows both of their sessions
  waiting for the planning lock.

Then every order is driven against the emulator and MORI must have processed each image once.
"""

from __future__ import annotations

import linecache
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pytest

from mori.batch import manifest
from mori.batch.ledger._postgres import PLANNING_LOCK
from mori.batch.parameters import ProtectParameters
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from mori.settings import Settings
from tasks.planning import plan_run
from tasks.ratelimit import client_for

from .helpers import (
    VENV_BIN,
    ChaosStack,
    audit_table,
    child_env,
    ledger_for,
    ledger_query,
    make_corpus,
    write_csv,
)

DOUBLED = (
    "SELECT oi.image_key, COUNT(*) AS n FROM order_images oi JOIN orders o USING(order_key)"
    " WHERE o.status != 'abandoned' GROUP BY oi.image_key HAVING COUNT(*) > 1"
)
CHILD = """
import sys
from flows.protect import protect

protect(manifest=sys.argv[1], completion="poll", poll_interval_seconds=0.3)
"""


@contextmanager
def planning_lock_held(ledger: str) -> Iterator[None]:
    """Hold the ledger's planning lock on a connection of our own for the block."""
    if ledger.startswith("postgresql://"):
        with psycopg.connect(ledger) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PLANNING_LOCK,))
            yield
            conn.commit()
        return
    import sqlite3

    holder = sqlite3.connect(ledger, isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


def waiting_for_the_lock(frame: FrameType | None) -> bool:
    """The stack is inside ``plan_and_record``, at the statement that takes the planning lock
    (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's ``pg_advisory_xact_lock``)."""
    names, at_lock = set(), False
    while frame is not None:
        code = frame.f_code
        names.add(code.co_name)
        line = linecache.getline(code.co_filename, frame.f_lineno)
        if code.co_filename.endswith("_sqlite.py") and "BEGIN IMMEDIATE" in line:
            at_lock = True
        if code.co_filename.endswith("_postgres.py") and code.co_name == "lock_planning":
            at_lock = True
        frame = frame.f_back
    return at_lock and "plan_and_record" in names


def waiting_sessions(url: str) -> int:
    """Sessions of the ledger's database waiting for the planning lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (PLANNING_LOCK,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_runs_planning_at_once_do_not_process_an_image_twice(
    backend: str,
    support_wait: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = make_corpus(tmp_path, 30, 0.0, seed=41)
    first = write_csv(tmp_path / "first.csv", rows[:20])
    second = write_csv(tmp_path / "second.csv", rows)  # the same 20 rows, plus 10
    ledger_target = ledger_for(backend, tmp_path, request)
    if backend == "postgresql":
        monkeypatch.setenv("MORI_LEDGER_URL", str(ledger_target))
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
            items = [manifest.load(rt.config.manifest_uri, rt.storage) for rt in runs]
            ledger = runs[0].config.ledger
            assert ledger == runs[1].config.ledger == str(ledger_target)
            keys: dict[int, list[str]] = {}

            def plan(n: int) -> None:
                keys[n] = plan_run.fn(items[n], runs[n].ledger, 100)[1]

            threads = [threading.Thread(target=plan, args=(n,)) for n in range(2)]
            with planning_lock_held(ledger):
                for thread in threads:
                    thread.start()
                support_wait(
                    lambda: all(
                        waiting_for_the_lock(sys._current_frames().get(t.ident or 0))
                        for t in threads
                    ),
                    what="both planners waiting for the planning lock",
                )
                assert keys == {}  # neither got past it
            for thread in threads:
                thread.join(60)
            assert set(keys) == {0, 1}

            for n, rt in enumerate(runs):
                for key in keys[n]:
                    rt.processor.process(key)
            stats = stack.stats()
        finally:
            for rt in runs:
                rt.close()

    doubled = ledger_query(ledger_target, DOUBLED)
    print(
        f"\n{backend}: concurrent plans: orders {keys}; MORI orders_created "
        f"{stats['orders_created']}, files_processed {stats['files_processed']}, "
        f"duplicate_files {stats['duplicate_files']}"
    )
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == 30
    assert doubled == []


@pytest.mark.parametrize("manifests", ["the same manifest", "one with rows appended"])
def test_two_hosts_planning_at_once_plan_every_image_once(
    manifests: str, prefect: str, support_wait: Any, tmp_path: Path, postgres_url: str
) -> None:
    """Two whole ``protect`` runs in two processes on one PostgreSQL ledger."""
    rows = make_corpus(tmp_path, 30, 0.0, seed=43)
    both = write_csv(tmp_path / "manifest.csv", rows)
    paths = [
        both if manifests == "the same manifest" else write_csv(tmp_path / "first.csv", rows[:20]),
        both,
    ]
    with ChaosStack(ledger_path=postgres_url, processing_seconds=0.1) as stack:
        env = child_env(prefect, {**stack.env, "MORI_LEDGER_URL": postgres_url})
        hosts = []
        with planning_lock_held(postgres_url):
            for n, path in enumerate(paths):
                log = (tmp_path / f"host-{n}.log").open("w")
                args = [str(VENV_BIN / "python"), "-c", CHILD, str(path)]
                hosts.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT))
            support_wait(
                lambda: waiting_sessions(postgres_url) == 2 or any(h.poll() for h in hosts),
                what="both hosts waiting for the planning lock",
            )
            assert waiting_sessions(postgres_url) == 2  # both inside planning, at once
        for n, host in enumerate(hosts):
            assert host.wait(120) == 0, (tmp_path / f"host-{n}.log").read_text()[-3000:]
        stats = stack.stats()

    orders = ledger_query(postgres_url, "SELECT order_key, generation, status FROM orders")
    print(f"\n{manifests}: orders {[dict(o) for o in orders]}; emulator {stats}")
    assert ledger_query(postgres_url, DOUBLED) == []
    planned = ledger_query(postgres_url, "SELECT count(DISTINCT image_key) AS n FROM order_images")
    assert planned[0]["n"] == 30
    assert stats["duplicate_files"] == 0 and stats["files_processed"] == 30
    images = audit_table(tmp_path / "audit", "images")
    assert set(images.status) <= {"processed", "skipped"}, images.status.value_counts()
    per_run = sorted(images.groupby("run_id").size())
    assert per_run == sorted(len(p.read_text().splitlines()) - 1 for p in paths)


@pytest.fixture
def support_wait() -> Any:
    """Poll a condition (every 20 ms, up to 60 s); fail with ``what`` when it never holds."""
    import time

    def wait(check: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    return wait
