"""The ledger, under the name the pipeline imports it by: see :mod:`mori.ledger`."""

from mori.ledger import (
    ORDER_STATUSES,
    TERMINAL,
    EventRecord,
    ImageRecord,
    Ledger,
    LedgerOptions,
    OrderRecord,
    PlannedIntent,
    Slot,
    ledger_location,
    make_slot,
    now_iso,
    open_ledger,
)

__all__ = [
    "ORDER_STATUSES",
    "TERMINAL",
    "EventRecord",
    "ImageRecord",
    "Ledger",
    "LedgerOptions",
    "OrderRecord",
    "PlannedIntent",
    "Slot",
    "ledger_location",
    "make_slot",
    "now_iso",
    "open_ledger",
]
