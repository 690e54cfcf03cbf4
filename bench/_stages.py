"""The stages ``bench.manifest`` measures, as this checkout's or an older ``mori`` runs them.

:func:`run` is called in the measured child process, with ``mori`` imported from the code
measured: code with :mod:`mori.batch.stream` streams the manifest as ``protect`` and
``mori-pipeline plan`` do; older code loads it whole (``load``, ``plan_and_record``,
``manifest_rows``), as its ``protect`` did. :func:`mark_processed` and :func:`ledger_size` run in
the benchmark's own process, in SQL.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

RATE = (60, "the benchmark")


def run(stage: str, manifest: str, target: str, work: Path) -> dict[str, Any]:
    """Run ``stage`` (``plan``, ``protect``, ``rerun``) on ``manifest`` with the ledger at
    ``target``; what it found: ``rows``, ``orders`` (planned or resumed) and ``skipped``."""
    from mori.batch.ledger import Ledger

    with Ledger(target) as ledger:
        try:
            import mori.batch.stream  # noqa: F401
        except ImportError:
            return _whole(stage, manifest, ledger, work)
        return _streamed(stage, manifest, ledger, work)


def _streamed(stage: str, manifest: str, ledger: Any, work: Path) -> dict[str, Any]:
    """The stage as this code runs it (see ``flows/protect.py``, ``deployments/plan_cli.py``)."""
    from mori.batch.manifest import ValidationOptions
    from mori.batch.outcomes import RunSummary, run_row
    from mori.batch.storage import Storage
    from mori.batch.stream import RunAudit, StreamRun, survey_manifest

    storage = Storage()
    phases = Phases()
    survey = survey_manifest(manifest, storage, ValidationOptions(), work / "rows")
    phases.done("survey")
    if stage == "plan":
        plan = StreamRun(survey, ledger, work / "windows", order_size=100)
        plan.triage()
        estimate = plan.estimate(rate=RATE)
        phases.done("triage")
        return {"rows": estimate.rows, "orders": estimate.orders, "skipped": 0, **phases.seconds}
    run_id = str(uuid.uuid4())
    started_at = datetime.now(UTC).isoformat()
    tables = RunAudit(work / "tables", run_id, manifest, survey.extras)
    plan = StreamRun(
        survey,
        ledger,
        work / "windows",
        order_size=100,
        output_uri=str(work / "output"),
        images=tables.images,
    )
    plan.triage()
    plan.estimate(rate=RATE)
    phases.done("triage")
    driven = 0
    for number in plan.windows():
        keys = plan.commit(number)
        phases.done("commit")
        tables.orders.add(plan.settle({}, {}, run_id))  # the orders are not driven
        phases.done("settle")
        driven += len(keys)
    counts = dict(tables.images.counts)
    summary = RunSummary(run_id, tables.images.rows, counts, dict(tables.images.failures), driven)
    row = run_row(summary, manifest, started_at, {})
    tables.publish(storage, str(work / "audit"), date.today(), row)
    phases.done("publish")
    skipped = counts.get("skipped", 0)
    return {"rows": summary.rows, "orders": driven, "skipped": skipped, **phases.seconds}


class Phases:
    """Wall seconds of a stage's parts, as ``<part>_s`` (a part may come back: they add up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, part: str) -> None:
        """The part that just ended."""
        now = time.perf_counter()
        key = f"{part}_s"
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self._last
        self._last = now


def _whole(stage: str, manifest: str, ledger: Any, work: Path) -> dict[str, Any]:
    """The stage as older code ran it: the whole manifest in memory."""
    from mori.batch.audit import write_table
    from mori.batch.estimate import dry_run
    from mori.batch.manifest import load
    from mori.batch.outcomes import manifest_rows, order_rows, run_row, summarise
    from mori.batch.plan import plan_and_record
    from mori.batch.storage import Storage

    storage = Storage()
    items = load(manifest, storage)
    if stage == "plan":
        estimate = dry_run(items, ledger, 100, rate=RATE)
        return {"rows": estimate.rows, "orders": estimate.orders, "skipped": 0}
    run_id = str(uuid.uuid4())
    started_at = datetime.now(UTC).isoformat()
    found, planned = plan_and_record(items, ledger, 100, str(work / "output"))
    keys = found.resume + [o.order_key for o in planned]
    rows = manifest_rows(run_id, manifest, items, found.known, {}, {}, ledger)
    summary = summarise(run_id, rows, len(keys))
    audit = str(work / "audit")
    for table in (rows, order_rows(run_id, {}, {}, ledger)):
        if table:
            write_table(storage, audit, table, run_id, date.today())
    write_table(storage, audit, [run_row(summary, manifest, started_at, {})], run_id, date.today())
    skipped = summary.counts.get("skipped", 0)
    return {"rows": summary.rows, "orders": len(keys), "skipped": skipped}


# -- in the benchmark's process ----------------------------------------------------------------

_IMAGES_DONE = (
    "UPDATE images SET status = 'processed', output_uri = {out}, output_sha256 = {sha},"
    " updated_at = ?"
)
_ORDERS_DONE = (
    "UPDATE orders SET status = 'downloaded', order_id = 'ord-' || substr(order_key, 1, 13),"
    " created_at = ?, confirmed_at = ?, completed_at = ?, downloaded_at = ?, updated_at = ?"
)


def mark_processed(target: str) -> None:
    """Every image processed and every order downloaded, as a finished run leaves the ledger
    (outputs named like the pipeline's, a SHA-256-long digest per image)."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    sha = "replace(image_key, '-', '') || replace(image_key, '-', '')"
    if _is_sqlite(target):
        out = "'/data/output/' || substr(order_key, 1, 8) || '/' || image_key || '.jpg'"
        with sqlite3.connect(target) as db:
            db.execute(_IMAGES_DONE.format(out=out, sha=sha), (at,))
            db.execute(_ORDERS_DONE, (at,) * 5)
        return
    import psycopg

    out = "'/data/output/' || substr(order_key, 1, 8) || '/' || image_key || '.jpg'"
    with psycopg.connect(target) as conn:
        conn.execute(_IMAGES_DONE.format(out=out, sha=sha).replace("?", "%s"), (at,))
        conn.execute(_ORDERS_DONE.replace("?", "%s"), (at,) * 5)
        conn.commit()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("VACUUM FULL ANALYZE")  # the updates' old row versions: not the ledger's


def ledger_size(target: str) -> dict[str, int]:
    """The ledger's images and its bytes on disk (SQLite: the file once checkpointed;
    PostgreSQL: its tables with their indexes and TOAST)."""
    if _is_sqlite(target):
        with sqlite3.connect(target) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            images = int(db.execute("SELECT count(*) FROM images").fetchone()[0])
        files = [Path(target), Path(target + "-wal")]
        return {"images": images, "bytes": sum(p.stat().st_size for p in files if p.exists())}
    import psycopg

    with psycopg.connect(target) as conn:
        images = int(conn.execute("SELECT count(*) FROM images").fetchone()[0])  # type: ignore[index]
        size = conn.execute(
            "SELECT sum(pg_total_relation_size(t::regclass))"
            " FROM unnest(ARRAY['orders', 'order_images', 'images']) AS t"
        ).fetchone()
    return {"images": images, "bytes": int(size[0]) if size else 0}


def _is_sqlite(target: str) -> bool:
    return not target.startswith(("postgresql://", "postgres://"))
