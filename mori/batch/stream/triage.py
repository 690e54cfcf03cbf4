"""The second pass over a run's rows, a window at a time: duplicates, the ledger, each row's lot.

:func:`triage_window` sorts a window's rows by image key (then row), marks every row after the
first of an image ``DUPLICATE_ROW`` (all of an image's rows are in one window:
:mod:`~.keyspool`), looks the window's keys up in the ledger and gives each row a
:class:`State`, exactly as :func:`mori.batch.plan.triage` splits a run's items: new, processed
before (skipped), failed before (sent again when the run retries failed images), in an order
an earlier run left open (resumed), or bad. :class:`PlanCounts` adds up what every window
found, for the run's estimate.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.codes import ErrorCode
from mori.batch.estimate import PlanCounts
from mori.batch.ledger import Ledger
from mori.batch.ledger.window import RECORD_SCHEMA
from mori.batch.manifest.keying import key_text

__all__ = ["SETTLED", "State", "WindowTriage", "count_window", "triage_window", "upload_rows"]


class State(enum.IntEnum):
    """What a run does with a row."""

    BAD = 0  # failed validation (or a duplicate): failed in the audit
    UNKEYED = 1  # valid but without an image key: pending in the audit
    NEW = 2  # never seen: planned into a new order
    DONE = 3  # processed in an earlier run: skipped
    FAILED = 4  # failed for good in an earlier run (and not retried): failed
    RETRY = 5  # failed for good in an earlier run, sent again (``retry_failed``)
    OPEN = 6  # in an order an earlier run left open: that order is resumed


#: The states whose rows the run settles without sending anything.
SETTLED = (State.BAD, State.UNKEYED, State.DONE, State.FAILED)


@dataclass
class WindowTriage:
    """A window's rows sorted by image key (then row), with what the run does with each."""

    rows: pa.Table
    #: Each row's :class:`State`.
    states: np.ndarray
    #: Each row's image key as text (null for bad rows and duplicates).
    keys: pa.Array
    #: Each row's record in the ledger (:data:`~mori.batch.ledger.window.RECORD_SCHEMA`; null
    #: where the ledger holds none).
    records: pa.Table

    def where(self, *states: State) -> np.ndarray:
        """The positions of the rows in any of ``states``."""
        return np.flatnonzero(np.isin(self.states, [int(s) for s in states]))


def count_window(counts: PlanCounts, found: WindowTriage, order_size: int) -> None:
    """Add one window to a run's counts (its new and retried images in orders of
    ``order_size``)."""
    states = found.states
    counts.rows += len(states)
    counts.bad.update(_counts(found.rows.column("error_code").filter(pa.array(states == 0))))
    statuses = found.records.column("status")
    counts.statuses.update(_counts(statuses))
    counts.new += int(np.count_nonzero(states == State.NEW))
    counts.retried += int(np.count_nonzero(states == State.RETRY))
    uploads = upload_rows(found.rows)
    for state in (State.NEW, State.RETRY):
        chosen = states == state
        upload = int(np.count_nonzero(chosen & uploads))
        url = int(np.count_nonzero(chosen)) - upload
        counts.orders["upload"] += math.ceil(upload / order_size)
        counts.orders["url"] += math.ceil(url / order_size)
    open_orders = found.records.column("order_key").filter(pa.array(states == State.OPEN))
    counts.open_rows.update(_counts(open_orders))


def triage_window(rows: pa.Table, ledger: Ledger | None, retry_failed: bool) -> WindowTriage:
    """The window's rows sorted, its duplicates marked, each row's state (see the module
    docstring). ``ledger=None``: no ledger exists yet, every valid row is new."""
    rows = rows.sort_by([("key", "ascending"), ("row", "ascending")])
    rows = _mark_duplicates(rows)
    keys = key_text(rows.column("key"))
    valid = pc.is_valid(keys).to_numpy(zero_copy_only=False)
    wanted = keys.filter(pa.array(valid))
    found = ledger.image_records(wanted.to_pylist()) if ledger is not None and len(wanted) else None
    records = _aligned(keys, found)
    states = np.full(rows.num_rows, int(State.UNKEYED), np.int8)
    states[pc.is_valid(rows.column("error_code")).to_numpy(zero_copy_only=False)] = State.BAD
    status = records.column("status")
    for value, state in (
        (None, State.NEW),
        ("processed", State.DONE),
        ("failed", State.RETRY if retry_failed else State.FAILED),
        ("planned", State.OPEN),
    ):
        has = pc.is_null(status) if value is None else pc.fill_null(pc.equal(status, value), False)
        states[valid & has.to_numpy(zero_copy_only=False)] = state
    return WindowTriage(rows, states, keys, records)


def upload_rows(rows: pa.Table) -> np.ndarray:
    """Per row: ``True`` when its image is uploaded (a file or S3 object), not sent as a URL."""
    kind = rows.column("kind")
    uploads: np.ndarray = pc.fill_null(pc.not_equal(kind, "url"), True).to_numpy(
        zero_copy_only=False
    )
    return uploads


def _mark_duplicates(rows: pa.Table) -> pa.Table:
    """Every row after the first of its image (sorted rows): ``DUPLICATE_ROW``, no key."""
    keys = rows.column("key").combine_chunks()
    count = len(keys)
    if count < 2:
        return rows
    raw = np.frombuffer(keys.buffers()[1], np.uint8)[keys.offset * 16 :][: count * 16]
    matrix = raw.reshape(-1, 16)
    valid = pc.is_valid(keys).to_numpy(zero_copy_only=False)
    again = np.zeros(count, bool)
    again[1:] = np.all(matrix[1:] == matrix[:-1], axis=1) & valid[1:] & valid[:-1]
    if not again.any():
        return rows
    starts = np.where(again, 0, np.arange(count))
    first = np.maximum.accumulate(starts)
    numbers = rows.column("row").to_numpy()
    codes = rows.column("error_code").to_pylist()
    messages = rows.column("error_message").to_pylist()
    for position in np.flatnonzero(again).tolist():
        codes[position] = ErrorCode.DUPLICATE_ROW
        messages[position] = (
            f"same image as row {numbers[first[position]]}; it is processed once, for that row"
        )
    keys = pc.if_else(pa.array(again), pa.nulls(count, keys.type), keys)
    replaced = {
        "key": keys,
        "error_code": pa.array(codes, pa.string()),
        "error_message": pa.array(messages, pa.string()),
    }
    for name, column in replaced.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, column)
    return rows


def _aligned(keys: pa.Array, found: pa.Table | None) -> pa.Table:
    """The record of each of ``keys`` (nulls where none), from the records ``found``."""
    count = len(keys)
    if found is None or not found.num_rows:
        return pa.table([pa.nulls(count, f.type) for f in RECORD_SCHEMA], schema=RECORD_SCHEMA)
    at = pc.index_in(keys, value_set=found.column("image_key"))
    return found.take(at)


def _counts(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """How often each (non-null) value occurs."""
    counted = pc.value_counts(values)
    return {
        str(v): int(n)
        for v, n in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        )
        if v is not None
    }
