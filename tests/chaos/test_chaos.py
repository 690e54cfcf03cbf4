"""Exactly once under every fault at once (invariants 1, 2, 4, 7 and 8 of docs/ARCHITECTURE.md).

≥ 1,000 small images, ~30 % of them URL rows, through the real ``protect`` flow (in-process, in
Prefect's test harness) against the emulator over HTTP with EVERY fault on: each HTTP fault on
every endpoint at 5 % and each webhook fault at 10 %. The corpus is split into two manifests in
one folder (one audit, one ledger) run side by side: the first waits for completion by webhook
(lost webhooks fall back to polling), the second polls (so ``GET /orders/{id}`` meets its faults
too). Rows a run leaves ``pending`` are resumed by rerunning the same manifest. Then: every row
processed exactly once, no duplicate at MORI, one audit outcome per row per run, every fault
kind fired, every output decodes. All of it twice: with the SQLite ledger, then with a
PostgreSQL one (300 images in orders of 4, so as many webhook events meet their faults).
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from deployments.stack import environment, static_files

from .helpers import (
    ALL_FAULT_KINDS,
    ChaosStack,
    audit_table,
    decodes,
    fault_kinds,
    ledger_query,
    make_corpus,
    write_csv,
)

#: ``CHAOS_IMAGES=5000 pytest tests/chaos/test_chaos.py -s`` for a bigger run.
IMAGES = int(os.environ.get("CHAOS_IMAGES", "1000"))
#: The PostgreSQL variant: fewer images in smaller orders (as many webhook events per image).
POSTGRES_IMAGES, POSTGRES_ORDER_SIZE = 300, 4
URL_SHARE = 0.3
#: ``any`` covers the seven HTTP targets (create, with_urls, confirm, get, download, upload,
#: result); the first rule that fires wins, so ~26.5 % of requests misbehave.
HTTP_FAULT_SPEC = ",".join(
    f"any:{fault}=0.05" for fault in ("500", "503", "429", "timeout", "drop", "reset")
)
#: Webhook faults at 10 % each (≥ 5 %): with ~100 order events every kind fires.
WEBHOOK_FAULT_SPEC = ",".join(
    f"webhook:{fault}=0.1" for fault in ("dup", "badsig", "delay", "reorder", "lose")
)
FAULTS = f"{HTTP_FAULT_SPEC},{WEBHOOK_FAULT_SPEC}"
ORDER_SIZE = 10  # ~100 orders, so ~100 webhook events
MAX_RUNS = 3


WEBHOOK_SHARE = 0.65


def run_protect(manifest: Path, host: str, completion: str, order_size: int) -> Any:
    from flows.protect import protect

    state = protect(
        manifest=str(manifest),
        order_size=order_size,
        max_concurrent_orders=16,
        poll_interval_seconds=0.5,
        wait_timeout_seconds=120,
        completion=completion,
        allowed_private_hosts=[host],
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state.result()


@pytest.fixture(scope="module", params=["sqlite-g1", "postgresql-g3"])
def chaos(
    prefect: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """The whole chaos run twice: a SQLite ledger against MORI's older API generation, then a
    PostgreSQL ledger against the current one (so both backends and both generations)."""
    root = tmp_path_factory.mktemp(f"chaos-{request.param}")
    if request.param == "sqlite-g1":
        yield run_chaos(root, root / "audit" / "ledger.sqlite", IMAGES, ORDER_SIZE, "g1")
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    url = server.database_url(name)
    try:
        with environment(MORI_LEDGER_URL=url):
            result = run_chaos(root, url, POSTGRES_IMAGES, POSTGRES_ORDER_SIZE, "g3")
        yield result
    finally:
        server.drop_database(name)


def run_chaos(
    root: Path, ledger: Path | str, images: int, order_size: int, generation: str
) -> dict[str, Any]:
    """Both manifests through ``protect`` side by side under every fault; what happened."""
    rows = make_corpus(root, images, URL_SHARE, seed=3)
    cut = round(len(rows) * WEBHOOK_SHARE)
    batches = {"webhook": rows[:cut], "poll": rows[cut:]}
    started = time.monotonic()
    summaries: list[Any] = []
    manifests: dict[str, Path] = {}
    with (
        static_files(root / "web") as host,
        ChaosStack(
            ledger_path=ledger,
            faults=FAULTS,
            seed=11,
            url_hosts=frozenset({host}),
            generation=generation,
        ) as stack,
    ):

        def batch_runs(completion: str, manifest: Path) -> list[Any]:
            runs = [run_protect(manifest, host, completion, order_size)]
            while runs[-1].count("pending") and len(runs) < MAX_RUNS:
                runs.append(run_protect(manifest, host, completion, order_size))  # resumes
            return runs

        for completion, batch in batches.items():
            manifests[completion] = write_csv(root / f"manifest-{completion}.csv", batch, host)
        # The two batches run side by side (one ledger, one client key), as two deployments'
        # runs would; each thread gets a copy of the harness's settings context.
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, batch_runs, completion, manifest)
                for completion, manifest in manifests.items()
            ]
            for future in futures:
                summaries += future.result()
        stats = stack.stats()
    wall = time.monotonic() - started
    return {
        "root": root,
        "ledger": ledger,
        "generation": generation,
        "rows": rows,
        "manifests": {str(m): len(batches[c]) for c, m in manifests.items()},
        "summaries": summaries,
        "stats": stats,
        "wall": wall,
    }


@pytest.mark.slow
def test_every_row_is_processed_exactly_once(chaos: dict[str, Any]) -> None:
    images = audit_table(chaos["root"] / "audit", "images")
    runs = audit_table(chaos["root"] / "audit", "runs")
    stats, summaries = chaos["stats"], chaos["summaries"]
    kinds = fault_kinds(stats)
    print(
        f"\nchaos: {len(chaos['rows'])} images, {len(summaries)} run(s) "
        f"{[s.counts for s in summaries]}, wall {chaos['wall']:.1f} s"
        f"\n  faults injected by kind: {dict(sorted(kinds.items()))} (total {sum(kinds.values())})"
        f"\n  faults injected by endpoint: {stats['faults_injected']}"
        f"\n  client requests {int(runs.api_requests.sum())}, retries {int(runs.api_retries.sum())}"
        f"\n  emulator: orders_created {stats['orders_created']}, orders_confirmed "
        f"{stats['orders_confirmed']}, files_processed {stats['files_processed']}, "
        f"duplicate_files {stats['duplicate_files']}, idempotent_replays "
        f"{stats['idempotent_replays']}, webhooks_sent {stats['webhooks_sent']}"
    )
    assert stats["duplicate_files"] == 0
    # Every row processed once (in its manifest's first or a resuming run), never twice.
    processed = images[images.status == "processed"]
    assert not processed.duplicated(["manifest_uri", "row_index"]).any()
    assert len(processed) == len(chaos["rows"])
    assert processed.image_key.is_unique and processed.sha256.dropna().is_unique
    assert set(processed.id) == {row["id"] for row in chaos["rows"]}
    assert images.status.isin({"processed", "skipped", "pending"}).all()
    assert stats["files_processed"] == len(chaos["rows"])
    for manifest, runs in images.groupby("manifest_uri"):
        last = runs[runs.recorded_at == runs.recorded_at.max()]
        assert set(last.status) <= {"processed", "skipped"}, (manifest, last.status.value_counts())


@pytest.mark.slow
def test_one_audit_outcome_per_row_per_run(chaos: dict[str, Any]) -> None:
    images = audit_table(chaos["root"] / "audit", "images")
    assert set(images.run_id) == {s.run_id for s in chaos["summaries"]}
    per_run = images.groupby(["run_id", "manifest_uri"])["row_index"].agg(["count", "nunique"])
    assert len(per_run) == len(chaos["summaries"])  # one manifest per run
    for (_, manifest), counts in per_run.iterrows():
        assert counts["count"] == counts["nunique"] == chaos["manifests"][manifest]
    assert images.status.isin({"processed", "skipped", "failed", "pending"}).all()
    pending = images[images.status == "pending"]
    assert pending.error_code.notna().all() and pending.error_message.str.len().gt(0).all()
    runs = audit_table(chaos["root"] / "audit", "runs")
    assert len(runs) == len(chaos["summaries"])


@pytest.mark.slow
def test_orders_confirmed_match_the_ledger(chaos: dict[str, Any]) -> None:
    stats = chaos["stats"]
    ledger = chaos["ledger"]
    orders = ledger_query(ledger, "SELECT order_key, order_id, status, kind FROM orders")
    reached = [o for o in orders if o["status"] in ("confirmed", "complete", "downloaded")]
    assert all(o["status"] == "downloaded" for o in orders if o["status"] != "abandoned")
    ids = [o["order_id"] for o in orders if o["order_id"] is not None]
    assert len(ids) == len(set(ids))
    assert stats["orders_created"] == len(ids)
    assert stats["orders_confirmed"] == len(reached) == stats["orders_completed"]
    doubled = ledger_query(
        ledger,
        "SELECT oi.image_key, COUNT(*) AS n FROM order_images oi JOIN orders o"
        " USING(order_key) WHERE o.status IN ('confirmed', 'complete', 'downloaded')"
        " GROUP BY oi.image_key HAVING COUNT(*) > 1",
    )
    assert doubled == []


@pytest.mark.slow
def test_every_fault_kind_fired(chaos: dict[str, Any]) -> None:
    stats = chaos["stats"]
    kinds = fault_kinds(stats)
    assert set(kinds) == ALL_FAULT_KINDS, sorted(ALL_FAULT_KINDS - set(kinds))
    hit = {key.split(":", 1)[0] for key in stats["faults_injected"]}
    targets = {"create", "with_urls", "confirm", "get", "download", "upload", "result"}
    if chaos["generation"] == "g3":  # URL rows go through the one create route
        targets.discard("with_urls")
    assert hit >= targets
    runs = audit_table(chaos["root"] / "audit", "runs")
    assert runs.api_retries.sum() > 0


@pytest.mark.slow
def test_outputs_decode_with_the_source_dimensions(chaos: dict[str, Any]) -> None:
    images = audit_table(chaos["root"] / "audit", "images")
    processed = images[images.status == "processed"]
    for row in processed.itertuples():
        size = decodes(Path(row.output_uri).read_bytes())
        assert size == (64, 48), row.output_uri
