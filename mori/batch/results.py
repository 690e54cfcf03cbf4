"""What became of an order and its images in one run: :class:`OrderResult`, :class:`ImageResult`.

:class:`~mori.batch.orders.OrderProcessor` returns them for the orders it drives;
:func:`result_from_ledger` builds them from the ledger for orders another process drove (the
child runs of a fanned-out ``protect`` run, or another run that held the order's claim).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from mori.batch.codes import ErrorCode
from mori.batch.ledger import Ledger, OrderRecord, Slot

__all__ = ["ImageResult", "OrderResult", "result_from_ledger", "settled_elsewhere"]


@dataclass
class ImageResult:
    """One image's outcome in this run."""

    image_key: str
    status: str  # processed | failed | pending | skipped
    output_uri: str | None = None
    output_sha256: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class OrderResult:
    """One order's outcome in this run (``order_key`` is the last generation's)."""

    order_key: str
    kind: str
    status: str  # processed | failed | pending | skipped (another process finished it)
    order_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 1
    replaced: list[str] = field(default_factory=list)
    images: dict[str, ImageResult] = field(default_factory=dict)
    record: OrderRecord | None = None
    #: Already final in the ledger when this run came to it: nothing was done for it now.
    from_ledger: bool = False


def result_from_ledger(
    ledger: Ledger, order_key: str, pending_reason: str | None = None
) -> OrderResult:
    """An order's outcome as the ledger records it, for a run that did not drive it itself.

    Follows replacements to the last generation (``replaced`` lists the abandoned keys), as
    :meth:`~mori.batch.orders.OrderProcessor.process` does. ``downloaded`` is ``processed``,
    ``failed`` is ``failed``, any other status ``pending`` with ``pending_reason`` (by default,
    the step the order reached). Images MORI failed before their order was replaced (a split)
    are ``failed``.
    """
    record = ledger.order(order_key)
    replaced: list[str] = []
    earlier: list[Slot] = []
    while record.status == "abandoned" and record.replaced_by:
        replaced.append(record.order_key)
        earlier += ledger.slots(record.order_key)
        record = ledger.order(record.replaced_by)
    status = {"downloaded": "processed", "failed": "failed"}.get(record.status, "pending")
    code, message = record.error_code, record.error_message
    if status == "pending":
        name = f"order {record.order_id}" if record.order_id else f"order {record.order_key[:8]}"
        code = ErrorCode.ORDER_INCOMPLETE
        message = pending_reason or f"{name} is {record.status}; a later run resumes it"
    result = OrderResult(record.order_key, record.kind, status, record.order_id, code, message)
    result.images = image_results(ledger, [*ledger.slots(record.order_key), *earlier], message)
    result.replaced, result.record = replaced, record
    return result


def settled_elsewhere(result: OrderResult) -> OrderResult:
    """``result`` of an order another process finished: what it processed is ``skipped`` here
    (done, not by this run), with no attempt of this run; failures stay ``failed``."""
    images = {
        key: dataclasses.replace(img, status="skipped") if img.status == "processed" else img
        for key, img in result.images.items()
    }
    status = "skipped" if result.status == "processed" else result.status
    return dataclasses.replace(result, status=status, attempts=0, images=images)


def image_results(
    ledger: Ledger, slots: Sequence[Slot], reason: str | None
) -> dict[str, ImageResult]:
    """Each slot's image as the ledger records it (``planned``: ``pending`` with ``reason``)."""
    images = ledger.images(dict.fromkeys(s.image_key for s in slots))
    results: dict[str, ImageResult] = {}
    for key, img in images.items():
        if img.status == "planned":
            results[key] = ImageResult(
                key, "pending", error_code=ErrorCode.ORDER_INCOMPLETE, error_message=reason
            )
        else:
            results[key] = ImageResult(
                key,
                img.status,
                img.output_uri,
                img.output_sha256,
                img.error_code,
                img.error_message,
            )
    return results
