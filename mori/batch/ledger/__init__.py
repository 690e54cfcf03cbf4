"""The ledger: durable intent and progress per image and per order, in SQLite or PostgreSQL.

:func:`open_ledger` (or :class:`Ledger`) opens a ledger at a path or URL and brings its schema
up to date; :func:`ledger_location` says which ledger a run uses; :func:`migrate_ledger` copies
one ledger into another (SQLite to PostgreSQL, when a deployment grows past one machine).

Layout: a store core (``_store``, ``_sqlite``, ``_postgres``, ``_retry``: connections,
transactions, the planning lock, retries), versioned migrations (``schema``), repositories
holding each concern's SQL (``orders``, ``images``, ``events``, ``objects`` for what was read
from the objects of a listed source, ``intent`` for the bulk path of planning, ``claims`` and
``dispatches`` for runs spread over several processes), and the :class:`Ledger` facade the
pipeline uses.
"""

from mori.batch.ledger._retry import RetryPolicy
from mori.batch.ledger.ledger import Ledger, LedgerOptions, open_ledger
from mori.batch.ledger.objects import SourceObject
from mori.batch.ledger.records import (
    ORDER_STATUSES,
    TERMINAL,
    ClaimRecord,
    DispatchRecord,
    EventRecord,
    ImageOutcome,
    ImageRecord,
    OrderRecord,
    PlannedIntent,
    Slot,
    make_slot,
    now_iso,
)
from mori.batch.ledger.schema import LedgerSchemaError
from mori.batch.ledger.target import ledger_location, redact
from mori.batch.ledger.transfer import MigrationReport, TableCopy, TransferError, migrate_ledger

__all__ = [
    "ORDER_STATUSES",
    "TERMINAL",
    "ClaimRecord",
    "DispatchRecord",
    "EventRecord",
    "ImageOutcome",
    "ImageRecord",
    "Ledger",
    "LedgerOptions",
    "LedgerSchemaError",
    "MigrationReport",
    "OrderRecord",
    "PlannedIntent",
    "RetryPolicy",
    "Slot",
    "SourceObject",
    "TableCopy",
    "TransferError",
    "ledger_location",
    "make_slot",
    "migrate_ledger",
    "now_iso",
    "open_ledger",
    "redact",
]
