"""Each row's outcome in the audit, as columns, the way :mod:`mori.batch.outcomes` settles rows.

* :func:`settled` -- rows the run settles without sending anything: bad (``failed``, with the
  row's error), without a key (``pending``), processed before (``skipped``: the earlier order and
  output) or failed before (``failed``, with the earlier error and the retry hint);
* :func:`planned` -- rows this run put in new orders: the outcome of their image in the order's
  result, or ``pending`` (``ORDER_INCOMPLETE``) with the reason;
* :func:`resumed` -- rows in orders an earlier run left open: settled by
  :func:`mori.batch.outcomes.image_rows` itself (there are few).

Each gives the :data:`~.auditing.OUTCOME` columns for :meth:`~.auditing.ImagesTable.add`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mori.batch.audit import ImageRow, ImageStatus
from mori.batch.codes import ErrorCode
from mori.batch.ledger import ImageRecord, Ledger
from mori.batch.ledger.window import STAMP_SCHEMA
from mori.batch.orders import OrderResult
from mori.batch.outcomes import RETRY_HINT, image_rows
from mori.batch.stream.auditing import OUTCOME
from mori.batch.stream.triage import State

__all__ = ["planned", "resumed", "settled", "stamped"]

Outcome = dict[str, Any]
_STAMPS = STAMP_SCHEMA.names[1:]  # order_id .. downloaded_at
_NOT_REACHED = "its order was not reached"


def settled(
    rows: pa.Table, states: np.ndarray, keys: pa.Array, records: pa.Table, ledger: Ledger | None
) -> Outcome:
    """The outcome of rows in :data:`~.triage.SETTLED` states (see the module docstring)."""
    done, failed = states == State.DONE, states == State.FAILED
    bad = states == State.BAD
    known = done | failed
    status = np.full(len(states), str(ImageStatus.PENDING), object)
    status[bad | failed] = str(ImageStatus.FAILED)
    status[done] = str(ImageStatus.SKIPPED)
    outcome: Outcome = {
        "image_key": keys,
        "status": pa.array(status, pa.string()),
        "attempts": pa.array(np.where(known, 0, 1), pa.int64()),
        "output_uri": _where(done, records.column("output_uri")),
        "output_sha256": _where(done, records.column("output_sha256")),
    }
    order_keys = _where(known, records.column("order_key"))
    outcome |= stamped(order_keys, ledger)
    codes = pc.if_else(pa.array(bad), rows.column("error_code"), records.column("error_code"))
    outcome["error_code"] = _where(bad | failed, codes)
    messages = rows.column("error_message").to_pylist()
    order_ids = outcome["order_id"].to_pylist()
    stamped_at = outcome["_stamped"]
    earlier = records.column("error_message").to_pylist()
    for n in np.flatnonzero(failed).tolist():
        order_id = order_ids[n] if stamped_at[n] else "?"
        messages[n] = f"failed in an earlier run (order {order_id}): {earlier[n]} ({RETRY_HINT})"
    outcome["error_message"] = _where(bad | failed, pa.array(messages, pa.string()))
    del outcome["_stamped"]
    return outcome


def stamped(order_keys: pa.Array, ledger: Ledger | None) -> Outcome:
    """``order_key`` and what the ledger holds of each row's order (``order_id`` and its
    times; null where the row has no order or the ledger lacks it), and ``_stamped``: per row,
    whether its order was found."""
    count = len(order_keys)
    wanted = pc.unique(order_keys.filter(pc.is_valid(order_keys))).to_pylist()
    found = ledger.order_stamps(wanted) if ledger is not None and wanted else None
    if found is None or not found.num_rows:
        nulls = {name: pa.nulls(count, pa.string()) for name in _STAMPS}
        return {"order_key": order_keys, **nulls, "_stamped": np.zeros(count, bool)}
    at = pc.index_in(order_keys, value_set=found.column("order_key"))
    columns = found.take(at)
    out: Outcome = {"order_key": order_keys}
    out |= {name: columns.column(name) for name in _STAMPS}
    out["_stamped"] = pc.is_valid(at).to_numpy(zero_copy_only=False)
    return out


def planned(
    keys: pa.Array,
    order_keys: pa.Array,
    results: Mapping[str, OrderResult],
    crashed: Mapping[str, str],
    ledger: Ledger | None,
) -> Outcome:
    """The outcome of rows this run planned into new orders (``order_keys``: each row's)."""
    by_image = {key: result for result in results.values() for key in result.images}
    if not by_image:  # nothing came back: every row waits for its order (as its key says)
        outcome = stamped(order_keys, ledger)
        reasons = pc.fill_null(
            pc.index_in(order_keys, value_set=pa.array(list(crashed), pa.string())), -1
        )
        messages = _reasons(order_keys, reasons, crashed)
        outcome.update(
            image_key=keys,
            status=str(ImageStatus.PENDING),
            error_code=ErrorCode.ORDER_INCOMPLETE,
            error_message=messages,
            attempts=1,
        )
        del outcome["_stamped"]
        return outcome
    rows = [ImageRow(run_id="", image_key=key) for key in keys.to_pylist()]
    left: list[int] = []
    for n, row in enumerate(rows):
        result = by_image.get(row.image_key or "")
        if result is None:
            left.append(n)
            continue
        image = result.images[row.image_key or ""]
        row.status = ImageStatus(image.status)
        row.error_code, row.error_message = image.error_code, image.error_message
        row.output_uri, row.output_sha256 = image.output_uri, image.output_sha256
        row.attempts = result.attempts
        if result.record is not None:
            _stamp(row, result.record.__dict__)
    if left:
        waiting = planned(keys.take(left), order_keys.take(left), {}, crashed, ledger)
        for position, n in enumerate(left):
            for name in OUTCOME:
                value = waiting[name]
                setattr(rows[n], name, value[position].as_py() if _is_array(value) else value)
    for n, row in enumerate(rows):
        if row.order_key is None:
            row.order_key = order_keys[n].as_py()
    return from_rows(rows)


def resumed(
    rows: pa.Table,
    keys: pa.Array,
    records: pa.Table,
    results: Mapping[str, OrderResult],
    crashed: Mapping[str, str],
    ledger: Ledger,
) -> Outcome:
    """The outcome of rows in orders an earlier run left open, settled by ``image_rows``."""
    audit = [ImageRow(run_id="", image_key=key) for key in keys.to_pylist()]
    known = {
        record["image_key"]: ImageRecord(fingerprint="", **record)
        for record in records.to_pylist()
        if record["image_key"] is not None
    }
    image_rows(audit, known, results, crashed, ledger)
    return from_rows(audit)


def from_rows(rows: Sequence[ImageRow]) -> Outcome:
    """The :data:`~.auditing.OUTCOME` columns of settled audit rows."""
    return {
        name: pa.array([getattr(r, name) for r in rows], pa.int64() if name == "attempts" else None)
        for name in OUTCOME
    }


def _stamp(row: ImageRow, order: Mapping[str, Any]) -> None:
    """``row``'s order fields from an order record (as :func:`mori.batch.outcomes._stamp`)."""
    row.order_key, row.order_id = order["order_key"], order["order_id"]
    row.created_at, row.confirmed_at = order["created_at"], order["confirmed_at"]
    row.completed_at, row.downloaded_at = order["completed_at"], order["downloaded_at"]


def _reasons(order_keys: pa.Array, at: pa.Array, crashed: Mapping[str, str]) -> pa.Array:
    """Why each row is pending: its order's crash, else that the order was not reached."""
    reasons = [f"{reason}; a later run resumes it" for reason in crashed.values()]
    default = f"{_NOT_REACHED}; a later run resumes it"
    choices = pa.array([*reasons, default], pa.string())
    index = pc.if_else(pc.equal(at, -1), len(reasons), at)
    return choices.take(index)


def _where(mask: np.ndarray, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` where ``mask``, else null."""
    return pc.if_else(pa.array(mask), values, pa.nulls(len(mask), values.type))


def _is_array(value: Any) -> bool:
    return isinstance(value, pa.Array | pa.ChunkedArray)
