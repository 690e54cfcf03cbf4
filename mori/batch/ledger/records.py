"""The ledger's records: what it hands out about orders, images, slots and webhook events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

__all__ = [
    "ORDER_STATUSES",
    "TERMINAL",
    "ClaimRecord",
    "DispatchRecord",
    "EventRecord",
    "ImageOutcome",
    "ImageRecord",
    "OrderRecord",
    "PlannedIntent",
    "Slot",
    "make_slot",
    "now_iso",
]

#: Order progress, in order. ``failed`` and ``abandoned`` are terminal too.
ORDER_STATUSES = ("planned", "created", "uploaded", "confirmed", "complete", "downloaded")
TERMINAL = frozenset({"downloaded", "failed", "abandoned"})


def now_iso() -> str:
    """The current UTC time as ISO-8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class OrderRecord:
    """The ledger's row of one order (its MORI id once created, each step's time)."""

    order_key: str
    kind: str
    generation: int
    status: str
    order_id: str | None
    order_name: str | None
    error_code: str | None
    error_message: str | None
    replaced_by: str | None
    planned_at: str
    created_at: str | None
    uploaded_at: str | None
    confirmed_at: str | None
    completed_at: str | None
    downloaded_at: str | None
    #: The outputs folder of the run that planned the order (``None``: planned by a version of
    #: mori-pipeline that did not record it).
    output_uri: str | None = None

    def reached(self, status: str) -> bool:
        """``True`` when the order got at least as far as ``status``."""
        if self.status not in ORDER_STATUSES:
            return False
        return ORDER_STATUSES.index(self.status) >= ORDER_STATUSES.index(status)


#: The ``orders`` columns of :class:`OrderRecord`, in field order.
ORDER_FIELDS = tuple(OrderRecord.__dataclass_fields__)


class ImageRecord(NamedTuple):
    """The ledger's row of one image (a named tuple: a rerun builds a million of them)."""

    image_key: str
    fingerprint: str
    status: str
    order_key: str
    output_uri: str | None
    output_sha256: str | None
    error_code: str | None
    error_message: str | None


class ImageOutcome(NamedTuple):
    """One image's final outcome, to record: ``processed`` unless ``error_code`` is given."""

    image_key: str
    output_uri: str | None
    output_sha256: str | None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    """One image's place in an order."""

    position: int
    image_key: str
    file_name: str
    location: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class EventRecord:
    """One stored webhook event (``payload`` is the JSON text as stored)."""

    event_id: str
    event_type: str
    order_id: str
    status: str
    payload: str
    received_at: str


@dataclass(frozen=True)
class ClaimRecord:
    """Who drives an order now: its claim, judged by the database's clock when it was read."""

    order_key: str
    owner: str
    #: The owner's host and process namespace, and its process id there (see
    #: :func:`mori.batch.claims.host_id`): a process on the same host can tell it is gone.
    host_id: str | None
    pid: int | None
    #: The dispatch the claim was taken for (``<run>/<group>/<attempt>``), if any.
    ticket: str | None
    #: Not released, and its lease has not run out.
    live: bool
    released: bool
    #: Seconds until the lease runs out (negative: it ran out that long ago).
    lease_left: float
    claimed_at: str
    #: How often a lapsed claim of this order was taken over by another owner.
    takeovers: int


@dataclass(frozen=True)
class DispatchRecord:
    """One group of a run's orders handed to a child run (its latest attempt)."""

    run_id: str
    group: int
    attempt: int
    order_keys: tuple[str, ...]
    child_run_id: str | None
    dispatched_at: str


_new_slot = object.__new__
_slot_setters = tuple(
    getattr(Slot, name).__set__
    for name in ("position", "image_key", "file_name", "location", "width", "height")
)


def make_slot(
    position: int,
    image_key: str,
    file_name: str,
    location: str,
    width: int | None = None,
    height: int | None = None,
) -> Slot:
    """``Slot(...)``, twice as fast: the frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field; this sets the slots directly (planning makes millions)."""
    slot: Slot = _new_slot(Slot)
    p, k, f, loc, w, h = _slot_setters
    p(slot, position)
    k(slot, image_key)
    f(slot, file_name)
    loc(slot, location)
    w(slot, width)
    h(slot, height)
    return slot


#: ``(order_key, kind, slots, generation)``: one order's intent for ``Ledger.plan_many``.
PlannedIntent = tuple[str, str, Sequence[Slot], int]
