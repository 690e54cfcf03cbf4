"""Turn a run's rows and order results into audit rows: exactly one outcome per row.

``processed`` (this run), ``skipped`` (done in an earlier run: ``order_id`` and ``output_uri``
point at that order's result), ``failed`` (``error_code`` + ``error_message``) or ``pending``
(the reason in ``error_code``/``error_message``; a later run resumes it).

The same :func:`image_rows` settles the rows of a ``protect`` run (one per manifest row) and of
a run that finishes orders outside ``protect`` (``finalize``, ``reconcile``: one per image of
each order, from :func:`slot_row`), so the two can never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mori.batch.audit import ImageRow, ImageStatus, OrderRow, RunRow
from mori.batch.codes import ErrorCode
from mori.batch.ledger import ImageRecord, Ledger, OrderRecord, Slot, now_iso
from mori.batch.manifest import Item, mask_url
from mori.batch.orders import OrderResult

#: The hint every row that failed in an earlier run carries.
RETRY_HINT = "retry_failed / --retry-failed sends it again"


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


def item_row(run_id: str, manifest_uri: str, item: Item, now: str) -> ImageRow:
    """A manifest row's audit row before its outcome is known (``failed`` if it is invalid)."""
    row = ImageRow(
        run_id=run_id,
        manifest_uri=manifest_uri,
        row_index=item.row_index,
        source=item.source,
        id=item.caller_id,
        file_name=item.file_name,
        image_key=item.image_key,
        sha256=item.sha256,
        bytes=item.bytes,
        width=item.width,
        height=item.height,
        recorded_at=now,
        extra=item.extra,
    )
    if not item.ok:
        row.status = ImageStatus.FAILED
        row.error_code, row.error_message = item.error_code, item.error_message
    return row


def manifest_rows(
    run_id: str,
    manifest_uri: str,
    items: Sequence[Item],
    known: Mapping[str, ImageRecord],
    results: Mapping[str, OrderResult],
    crashed: Mapping[str, str],
    ledger: Ledger,
) -> list[ImageRow]:
    """A ``protect`` run's ``images`` rows: one per manifest row, settled by :func:`image_rows`."""
    now = now_iso()
    rows = [item_row(run_id, manifest_uri, item, now) for item in items]
    return image_rows(rows, known, results, crashed, ledger)


def slot_row(run_id: str, slot: Slot, fingerprint: str | None, now: str) -> ImageRow:
    """An order image's audit row when there is no manifest row (``finalize``, ``reconcile``):
    the source is the ledger's location of the image; ``row_index`` and ``manifest_uri`` are
    empty. A URL's credential-like query parameters are masked, as in a manifest row."""
    sha = fingerprint.removeprefix("sha256:") if fingerprint else None
    return ImageRow(
        run_id=run_id,
        source=mask_url(slot.location),
        file_name=slot.file_name,
        image_key=slot.image_key,
        sha256=sha if fingerprint and fingerprint.startswith("sha256:") else None,
        width=slot.width,
        height=slot.height,
        recorded_at=now,
    )


def image_rows(
    rows: Sequence[ImageRow],
    known: Mapping[str, ImageRecord],
    results: Mapping[str, OrderResult],
    crashed: Mapping[str, str],
    ledger: Ledger,
) -> list[ImageRow]:
    """Settle every row's outcome (in place) and return the rows.

    ``known`` holds the ledger's records, from before this run, of images the run found
    settled or open; ``results`` and ``crashed`` are this run's orders by key (``crashed``:
    orders whose task failed, with the reason). A row already ``failed`` (bad manifest row)
    keeps its outcome.
    """
    by_image: dict[str, OrderResult] = {}
    for res in results.values():
        by_image.update(dict.fromkeys(res.images, res))
    orders = _OrderCache(ledger)
    current = ledger.images(r.image_key for r in rows if r.image_key and r.status != "failed")
    for row in rows:
        if row.status == ImageStatus.FAILED or row.image_key is None:
            continue
        key = row.image_key
        rec = current.get(key)
        if key in by_image:
            res = by_image[key]
            img = res.images[key]
            row.status = ImageStatus(img.status)
            row.error_code, row.error_message = img.error_code, img.error_message
            row.output_uri, row.output_sha256 = img.output_uri, img.output_sha256
            row.attempts = res.attempts
            _stamp(row, res.record)
        elif rec is not None and key in known and rec.status != "planned":
            _settled_earlier(row, known[key], orders.get(known[key].order_key))
        else:
            reason = crashed.get(rec.order_key if rec else "", "its order was not reached")
            row.status = ImageStatus.PENDING
            row.error_code = ErrorCode.ORDER_INCOMPLETE
            row.error_message = f"{reason}; a later run resumes it"
            _stamp(row, orders.get(rec.order_key) if rec else None)
        if rec is not None and row.order_key is None:
            row.order_key = rec.order_key
    return list(rows)


def _settled_earlier(row: ImageRow, before: ImageRecord, order: OrderRecord | None) -> None:
    """An image processed (``skipped``) or failed for good in an earlier run."""
    row.attempts = 0
    if before.status == "processed":
        row.status = ImageStatus.SKIPPED
        row.output_uri, row.output_sha256 = before.output_uri, before.output_sha256
    else:
        row.status = ImageStatus.FAILED
        row.error_code = before.error_code
        order_id = order.order_id if order else "?"
        row.error_message = (
            f"failed in an earlier run (order {order_id}): {before.error_message} ({RETRY_HINT})"
        )
    _stamp(row, order)


class _OrderCache:
    """The ledger's order records, each read once."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._orders: dict[str, OrderRecord | None] = {}

    def get(self, key: str) -> OrderRecord | None:
        if key not in self._orders:
            try:
                self._orders[key] = self._ledger.order(key)
            except KeyError:
                self._orders[key] = None
        return self._orders[key]


def _stamp(row: ImageRow, order: OrderRecord | None) -> None:
    if order is None:
        return
    row.order_key, row.order_id = order.order_key, order.order_id
    row.created_at, row.confirmed_at = order.created_at, order.confirmed_at
    row.completed_at, row.downloaded_at = order.completed_at, order.downloaded_at


def order_rows(
    run_id: str, results: Mapping[str, OrderResult], crashed: Mapping[str, str], ledger: Ledger
) -> list[OrderRow]:
    """One audit row per order this run worked on (including ones that crashed)."""
    now = now_iso()
    rows = []
    for res in results.values():
        rec = res.record or ledger.order(res.order_key)
        statuses = Counter(img.status for img in res.images.values())
        row = _order_row(run_id, rec, now)
        row.status = res.status
        row.file_count = len(res.images)
        row.processed, row.failed = statuses["processed"], statuses["failed"]
        row.error_code, row.error_message = res.error_code, res.error_message
        row.attempts = res.attempts
        row.replaced_order_keys = list(res.replaced)
        rows.append(row)
    for key, reason in crashed.items():
        rec = ledger.order(key)
        row = _order_row(run_id, rec, now)
        row.status = ImageStatus.PENDING
        row.file_count = len(ledger.slots(rec.order_key))
        row.error_code, row.error_message = ErrorCode.ORDER_INCOMPLETE, reason
        rows.append(row)
    return rows


def _order_row(run_id: str, rec: OrderRecord, now: str) -> OrderRow:
    return OrderRow(
        run_id=run_id,
        order_key=rec.order_key,
        order_id=rec.order_id,
        kind=rec.kind,
        generation=rec.generation,
        planned_at=rec.planned_at,
        created_at=rec.created_at,
        confirmed_at=rec.confirmed_at,
        completed_at=rec.completed_at,
        downloaded_at=rec.downloaded_at,
        recorded_at=now,
    )


def summarise(run_id: str, rows: Sequence[ImageRow], orders: int) -> RunSummary:
    """Counts by status and failures by error code."""
    counts = Counter(str(r.status) for r in rows)
    failures = Counter(str(r.error_code) for r in rows if r.status == ImageStatus.FAILED)
    return RunSummary(run_id, len(rows), dict(counts), dict(failures), orders)


def run_row(
    summary: RunSummary, manifest_uri: str, started_at: str, client_stats: Mapping[str, Any]
) -> RunRow:
    """The ``runs`` table's row for one run."""
    return RunRow(
        run_id=summary.run_id,
        manifest_uri=manifest_uri,
        started_at=started_at,
        finished_at=now_iso(),
        wall_seconds=summary.wall_seconds,
        rows=summary.rows,
        orders=summary.orders,
        api_requests=client_stats.get("requests", 0),
        api_retries=client_stats.get("retries", 0),
        rate_limited=client_stats.get("rate_limited", 0),
        processed=summary.count("processed"),
        skipped=summary.count("skipped"),
        failed=summary.count("failed"),
        pending=summary.count("pending"),
    )
