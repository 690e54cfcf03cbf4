"""Webhook-driven completion through a real Prefect server: one ``finalize`` run per order.

The one-process setup (``deployments/serve.py --only finalize --receiver PORT --register-url``)
runs in a subprocess against a real ``prefect server``. The emulator sends some events twice
(``webhook:dup=0.5``); the test also sends an event with a *new* ``eventId`` (and the other
event name) for an order, and replays every order through a second dispatcher, as a restarted
receiver would. ``protect`` runs with ``wait_timeout_seconds=0``, so the served ``finalize``
deployment does all the completing.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pyarrow.dataset as ds
import pytest

from deployments.receiver import FinalizeDispatcher
from deployments.stack import LocalStack, environment
from mori.batch.ledger import Ledger, ledger_location
from mori.batch.receiver import PATH
from mori.models import WebhookEvent
from mori.serving import free_port
from mori.settings import Settings
from mori.webhooks import SIGNATURE_HEADER, sign

IMAGES, ORDER_SIZE = 8, 2
SERVE = [sys.executable, "-m", "deployments.serve", "--only", "finalize"]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _finalize_runs(order_ids: set[str]) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["finalize"])), limit=200
        )
    return [r for r in runs if r.parameters.get("order_id") in order_ids]


def _deployment_exists(name: str) -> bool:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def _event(order_id: str, event_type: str = "ORDER.PROCESSED") -> bytes:
    body = {
        "eventId": str(uuid.uuid4()),
        "eventType": event_type,
        "occurredAt": "2026-02-19T12:00:00.000Z",
        "data": {"orderId": order_id, "status": "complete"},
    }
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.slow
def test_duplicate_webhooks_yield_one_finalize_run_per_order(
    prefect_api: Any, processes: Any, support: Any, tmp_path: Path
) -> None:
    from flows.protect import protect

    work = tmp_path / "batch"
    manifest = support.make_manifest(work, IMAGES)
    audit = work / "audit"
    ledger_path = Path(ledger_location(str(audit), Settings()))
    port = free_port()
    receiver = f"http://127.0.0.1:{port}{PATH}"
    with LocalStack(
        ledger_path, processing_seconds=1.0, faults="webhook:dup=0.5", seed=0, webhooks=False
    ) as stack:
        # the one-process setup: serve finalize + the receiver, registered with MORI
        processes.start(
            "serve",
            [*SERVE, "--audit", str(audit), *("--receiver", str(port), "--register-url", receiver)],
            support.stack_env(prefect_api),
        )
        support.wait_for(
            lambda: _deployment_exists("finalize/finalize") and _healthy(port),
            90,
            what="served finalize and its receiver",
        )
        secret = (ledger_path.parent / "webhook-secret").read_text()
        ledger = Ledger(ledger_path)
        with environment(MORI_WEBHOOK_SECRET=secret):
            summary = protect(
                manifest=str(manifest),
                order_size=ORDER_SIZE,
                wait_timeout_seconds=0,
                completion="webhook",
            )
        assert summary.orders == IMAGES // ORDER_SIZE
        assert summary.count("pending") == IMAGES  # protect did not wait: finalize completes
        order_ids = {row["order_id"] for row in _orders(ledger) if row["order_id"]}
        assert len(order_ids) == summary.orders

        # a resend with a new eventId (and the other event name) for one order
        body = _event(sorted(order_ids)[0])
        answer = httpx.post(
            receiver, content=body, headers={SIGNATURE_HEADER: sign(body, secret)}, timeout=5
        )
        assert answer.status_code == 200 and answer.json()["duplicate"] is False

        def all_downloaded() -> bool:
            rows = _orders(ledger)
            return all(row["status"] == "downloaded" for row in rows)

        support.wait_for(all_downloaded, 150, what="finalize runs to download every order")

        # a restarted receiver (fresh memory) replaying every order: still one run each
        replay = FinalizeDispatcher(parameters={"audit": str(audit)})
        for order_id in order_ids:
            replay(_as_event(order_id), True)
        replay.drain()
        replay.close()
        assert set(replay.started) == order_ids and replay.failures == 0

        runs = support.wait_for(
            lambda: (
                (r := _finalize_runs(order_ids))
                and len(r) >= len(order_ids)
                and all(x.state_type.value in TERMINAL for x in r)
                and r
            ),
            60,
            what="finalize runs to finish",
        )
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        stats = stack.stats()
        ledger.close()

    per_order = Counter(r.parameters["order_id"] for r in runs)
    assert per_order == dict.fromkeys(order_ids, 1), per_order
    assert {r.state_name for r in runs} == {"Completed"}, [r.state_name for r in runs]
    assert stats["faults_injected"].get("webhook:dup", 0) >= 1, stats["faults_injected"]
    assert health["duplicates"] >= 1 and health["rejected"] == 0, health
    assert health["received"] >= len(order_ids) + 2  # every order, a dup and the resend
    assert stats["duplicate_files"] == 0
    assert stats["files_processed"] == IMAGES

    images = ds.dataset(audit / "images", partitioning="hive").to_table().to_pandas()
    finalize_rows = images[images.run_id.isin({str(r.id) for r in runs})]
    assert len(finalize_rows) == IMAGES
    assert set(finalize_rows.status) == {"processed"}
    assert len(list((work / "output").iterdir())) == IMAGES


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _orders(ledger: Ledger) -> list[dict[str, Any]]:
    return [
        {"order_key": o.order_key, "order_id": o.order_id, "status": o.status}
        for o in ledger.orders()
    ]


def _as_event(order_id: str) -> WebhookEvent:
    return WebhookEvent.model_validate_json(_event(order_id, "ORDER.ANTI_AI.PROCESSED"))
