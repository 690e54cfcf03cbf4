"""Turn a run's items and order results into audit rows: exactly one outcome per manifest row.

``processed`` (this run), ``skipped`` (done in an earlier run: ``order_id`` and ``output_uri``
point at that order's result), ``failed`` (``error_code`` + ``error_message``) or ``pending``
(the reason in ``error_code``/``error_message``; a later run resumes it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mori.batch.audit import RUNS_SCHEMA
from mori.batch.ledger import Ledger, OrderRecord, now_iso
from mori.batch.manifest import Item
from mori.batch.orders import OrderResult
from mori.batch.plan import Triage

_RESERVED = {"run_id", "status", "error_code", "error_message", "order_id", "image_key"}


@dataclass
class RunSummary:
    """Totals of one run, as the CLI, the demo and the UI show them."""

    run_id: str
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    orders: int = 0
    wall_seconds: float = 0.0
    audit_files: list[str] = field(default_factory=list)
    output_uri: str = ""
    audit_uri: str = ""

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)


def image_rows(
    run_id: str,
    manifest_uri: str,
    items: Sequence[Item],
    triage: Triage,
    results: Mapping[str, OrderResult],
    crashed: Mapping[str, str],
    ledger: Ledger,
) -> list[dict[str, Any]]:
    """One audit row per manifest row. ``results``/``crashed`` are keyed by original order key."""
    by_image: dict[str, OrderResult] = {}
    for res in results.values():
        for key in res.images:
            by_image[key] = res
    orders: dict[str, OrderRecord] = {}

    def order_of(key: str) -> OrderRecord | None:
        if key not in orders:
            try:
                orders[key] = ledger.order(key)
            except KeyError:
                return None
        return orders[key]

    now = now_iso()
    current = ledger.images(it.image_key for it in items if it.image_key)
    rows = []
    for it in items:
        row = _base_row(run_id, manifest_uri, it, now)
        rec = current.get(it.image_key or "")
        if not it.ok:
            row.update(status="failed", error_code=it.error_code, error_message=it.error_message)
        elif it.image_key in by_image:
            res = by_image[it.image_key or ""]
            img = res.images[it.image_key or ""]
            row.update(
                status=img.status,
                error_code=img.error_code,
                error_message=img.error_message,
                output_uri=img.output_uri,
                output_sha256=img.output_sha256,
                attempts=res.attempts,
            )
            _stamp(row, res.record)
        elif rec is not None and it.image_key in triage.known and rec.status != "planned":
            before = triage.known[it.image_key or ""]
            order = order_of(before.order_key)
            if before.status == "processed":
                row.update(
                    status="skipped",
                    output_uri=before.output_uri,
                    output_sha256=before.output_sha256,
                    attempts=0,
                )
            else:
                row.update(
                    status="failed",
                    error_code=before.error_code,
                    attempts=0,
                    error_message=f"failed in an earlier run (order "
                    f"{order.order_id if order else '?'}): {before.error_message}"
                    " (retry_failed / --retry-failed sends it again)",
                )
            _stamp(row, order)
        else:
            order = order_of(rec.order_key) if rec else None
            reason = crashed.get(rec.order_key if rec else "", "its order was not reached")
            row.update(
                status="pending",
                error_code="ORDER_INCOMPLETE",
                error_message=f"{reason}; a later run resumes it",
            )
            _stamp(row, order)
        if rec is not None:
            row["order_key"] = row.get("order_key") or rec.order_key
        rows.append(row)
    return rows


def _base_row(run_id: str, manifest_uri: str, it: Item, now: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "manifest_uri": manifest_uri,
        "row_index": it.row_index,
        "source": it.source,
        "id": it.caller_id,
        "file_name": it.file_name,
        "image_key": it.image_key,
        "sha256": it.sha256,
        "bytes": it.bytes,
        "width": it.width,
        "height": it.height,
        "attempts": 1,
        "recorded_at": now,
    }
    for name, value in it.extra.items():
        row[f"manifest_{name}" if name in _RESERVED or name in row else name] = value
    return row


def _stamp(row: dict[str, Any], order: OrderRecord | None) -> None:
    if order is None:
        return
    row.update(
        order_key=order.order_key,
        order_id=order.order_id,
        created_at=order.created_at,
        confirmed_at=order.confirmed_at,
        completed_at=order.completed_at,
        downloaded_at=order.downloaded_at,
    )


def order_rows(
    run_id: str, results: Mapping[str, OrderResult], crashed: Mapping[str, str], ledger: Ledger
) -> list[dict[str, Any]]:
    """One audit row per order this run worked on (including ones that crashed)."""
    now = now_iso()
    rows = []
    for res in results.values():
        rec = res.record or ledger.order(res.order_key)
        statuses = Counter(img.status for img in res.images.values())
        rows.append(
            _order_row(run_id, rec, now)
            | {
                "status": res.status,
                "file_count": len(res.images),
                "processed": statuses["processed"],
                "failed": statuses["failed"],
                "error_code": res.error_code,
                "error_message": res.error_message,
                "attempts": res.attempts,
                "replaced_order_keys": res.replaced or [],
            }
        )
    for key, reason in crashed.items():
        rec = ledger.order(key)
        rows.append(
            _order_row(run_id, rec, now)
            | {
                "status": "pending",
                "file_count": len(ledger.slots(rec.order_key)),
                "processed": 0,
                "failed": 0,
                "error_code": "ORDER_INCOMPLETE",
                "error_message": reason,
                "attempts": 1,
                "replaced_order_keys": [],
            }
        )
    return rows


def _order_row(run_id: str, rec: OrderRecord, now: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "order_key": rec.order_key,
        "order_id": rec.order_id,
        "kind": rec.kind,
        "generation": rec.generation,
        "planned_at": rec.planned_at,
        "created_at": rec.created_at,
        "confirmed_at": rec.confirmed_at,
        "completed_at": rec.completed_at,
        "downloaded_at": rec.downloaded_at,
        "recorded_at": now,
    }


def summarise(run_id: str, rows: Sequence[dict[str, Any]], orders: int) -> RunSummary:
    """Counts by status and failures by error code."""
    counts = Counter(str(r["status"]) for r in rows)
    failures = Counter(str(r["error_code"]) for r in rows if r["status"] == "failed")
    return RunSummary(run_id, len(rows), dict(counts), dict(failures), orders)


def run_row(
    summary: RunSummary, manifest_uri: str, started_at: str, client_stats: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``runs`` table's row for one run."""
    row: dict[str, Any] = {
        "run_id": summary.run_id,
        "manifest_uri": manifest_uri,
        "started_at": started_at,
        "finished_at": now_iso(),
        "wall_seconds": summary.wall_seconds,
        "rows": summary.rows,
        "orders": summary.orders,
        "api_requests": client_stats.get("requests", 0),
        "api_retries": client_stats.get("retries", 0),
        "rate_limited": client_stats.get("rate_limited", 0),
    }
    for status in ("processed", "skipped", "failed", "pending"):
        row[status] = summary.count(status)
    assert set(row) <= set(RUNS_SCHEMA.names)
    return row
