"""A window's new images planned into orders and recorded, under the ledger's planning lock.

:func:`plan_window` is :func:`mori.batch.plan.plan_orders` for the rows of one window, in
columns: the images sorted by key, uploads (files, S3 objects) first and then URLs, chunked
into orders of at most ``order_size``, each keyed by :func:`mori.keys.order_key`. The same
images give the same orders.

:func:`commit_window` records a window's plan before any of its orders is created: the new
images' orders inserted as they are (:meth:`~mori.batch.ledger.Ledger.record_window`), and
the images that failed before and are sent again reopened and planned at a generation above
their earlier orders (:meth:`~mori.batch.ledger.Ledger.reopen_failed`). It runs under the
planning lock, and looks again at any image another run planned since this run's triage (a
conflict): such an image is not planned again, its row takes the lot the ledger now gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mori import keys as keyring
from mori.batch.ledger import Ledger, make_slot
from mori.batch.ledger.window import SLOT_COLUMNS, WindowConflict, WindowOrder
from mori.batch.manifest.columnar import fingerprints
from mori.batch.stream.triage import State, WindowTriage, upload_rows

__all__ = ["WindowPlan", "commit_window", "plan_window"]

#: The columns of a row that its order's slot needs.
_PLANNED = ("kind", "file_name", "location", "width", "height", "fingerprint", "sha256")


@dataclass
class WindowPlan:
    """Orders for some rows of a window: the orders, their slots, and each row's order."""

    orders: list[WindowOrder]
    #: One row per image (:data:`~mori.batch.ledger.window.SLOT_COLUMNS`).
    slots: pa.Table
    #: The positions (in the window) of the rows planned, and the order key of each.
    positions: np.ndarray
    order_keys: pa.Array


def plan_window(
    found: WindowTriage, positions: np.ndarray, order_size: int, generation: int = 0
) -> WindowPlan:
    """Orders of the rows at ``positions`` (sorted by key): uploads first, then URLs."""
    uploads = upload_rows(found.rows)[positions]
    orders: list[WindowOrder] = []
    parts: list[np.ndarray] = []
    index: list[np.ndarray] = []
    place: list[np.ndarray] = []
    for kind, chosen in (("upload", positions[uploads]), ("url", positions[~uploads])):
        texts = found.keys.take(pa.array(chosen)).to_pylist()
        for start in range(0, len(chosen), order_size):
            chunk = texts[start : start + order_size]
            index.append(np.full(len(chunk), len(orders), np.int64))
            place.append(np.arange(len(chunk), dtype=np.int64))
            orders.append((keyring.order_key(chunk, generation), kind, generation))
        parts.append(chosen)
    ordered = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    order_keys = pa.array([key for key, _, _ in orders], pa.string()).take(
        pa.array(np.concatenate(index) if index else np.zeros(0, np.int64))
    )
    taken = pa.array(ordered)
    rows = found.rows.select(list(_PLANNED)).take(taken)
    url = pc.equal(rows.column("kind"), "url")
    slots = pa.table(
        [
            order_keys,
            pa.array(np.concatenate(place) if place else np.zeros(0, np.int64), pa.int64()),
            found.keys.take(taken),
            pc.fill_null(rows.column("file_name"), ""),
            pc.fill_null(rows.column("location"), ""),
            rows.column("width"),
            rows.column("height"),
            pc.if_else(url, rows.column("fingerprint"), fingerprints(rows)),
        ],
        names=list(SLOT_COLUMNS),
    )
    return WindowPlan(orders, slots, ordered, order_keys)


def commit_window(
    found: WindowTriage,
    ledger: Ledger,
    order_size: int,
    output_uri: str | None,
    retry_failed: bool = False,
) -> list[WindowPlan]:
    """Record the plan of the window's new and retried rows (see the module docstring); the
    plans recorded. ``found``'s states and records change for rows another run planned since."""
    plans = []
    with ledger.exclusive():
        new = found.where(State.NEW)
        if len(new):
            plan = plan_window(found, new, order_size)
            try:
                ledger.record_window(plan.orders, plan.slots, output_uri)
            except WindowConflict:
                _look_again(found, new, ledger, retry_failed)
                plan = plan_window(found, found.where(State.NEW), order_size)
                ledger.record_window(plan.orders, plan.slots, output_uri)
            plans.append(plan)
        retried = found.where(State.RETRY)
        if len(retried):
            _look_again(found, retried, ledger, retry_failed)
            retried = found.where(State.RETRY)
        if len(retried):
            texts = found.keys.take(pa.array(retried)).to_pylist()
            generation = ledger.reopen_failed(texts)
            plan = plan_window(found, retried, order_size, generation)
            _record_retried(ledger, plan, output_uri)
            plans.append(plan)
    return plans


def _look_again(
    found: WindowTriage, positions: np.ndarray, ledger: Ledger, retry_failed: bool
) -> None:
    """The ledger's records of the rows at ``positions`` now, and their states from them."""
    texts = found.keys.take(pa.array(positions))
    now = ledger.image_records(texts.to_pylist())
    at = pc.index_in(texts, value_set=now.column("image_key"))
    fresh = now.take(at)
    records = found.records.to_pylist()
    for n, record in zip(positions.tolist(), fresh.to_pylist(), strict=True):
        records[n] = record
        status = record["status"]
        if status is None:
            found.states[n] = State.NEW
        elif status == "processed":
            found.states[n] = State.DONE
        elif status == "failed":
            found.states[n] = State.RETRY if retry_failed else State.FAILED
        else:
            found.states[n] = State.OPEN
    found.records = pa.Table.from_pylist(records, schema=found.records.schema)


def _record_retried(ledger: Ledger, plan: WindowPlan, output_uri: str | None) -> None:
    """The orders of images sent again: their ``images`` rows exist, so they are merged."""
    slots = plan.slots.to_pylist()
    by_order: dict[str, list[object]] = {}
    prints: dict[str, str] = {}
    for slot in slots:
        made = make_slot(
            slot["position"],
            slot["image_key"],
            slot["file_name"],
            slot["location"],
            slot["width"],
            slot["height"],
        )
        by_order.setdefault(slot["order_key"], []).append(made)
        prints[slot["image_key"]] = slot["fingerprint"] or "url:" + slot["location"]
    intents = [(key, kind, by_order[key], g) for key, kind, g in plan.orders]
    ledger.plan_many(intents, prints, output_uri=output_uri)  # type: ignore[arg-type]
