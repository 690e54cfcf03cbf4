"""The ``images`` table: each image's fingerprint, current order and final outcome.

Functions of a :class:`~mori.batch.ledger._store.Tx`. An image's row is written when an order
planning it is recorded (see :mod:`mori.batch.ledger.intent`), moved to a replacement order while
still ``planned``, and finished once (``processed`` or ``failed``); only a retry of failed
images sets it back to ``planned``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mori.batch.bulk import gc_paused
from mori.batch.ledger._store import Tx
from mori.batch.ledger.records import ImageOutcome, ImageRecord

__all__ = [
    "SCAN_SHARE",
    "done",
    "fail_planned",
    "fingerprints",
    "lookup",
    "move_planned",
    "reopen_failed",
    "statuses",
]

_COLUMNS = ", ".join(ImageRecord._fields)
#: SQLite: look up by scanning the whole ``images`` table once the keys are 1/4 of its rows or
#: more (a scan costs about 1.3 µs a row, a probe about 5 µs a key).
SCAN_SHARE = 4


def lookup(tx: Tx, keys: list[str]) -> dict[str, ImageRecord]:
    """The ledger's record of each known key of ``keys``.

    Few keys are looked up by index. In SQLite, when they are a good share of the table (a
    rerun of a big manifest), one pass over the table is several times faster than the probes.
    """
    found: dict[str, ImageRecord] = {}
    if not keys:
        return found
    if tx.dialect == "sqlite":
        rows = tx.value("SELECT max(rowid) FROM images")  # ≥ the row count
        if not rows:
            return found  # e.g. a new ledger: a first run of a big manifest looks up nothing
        if len(keys) * SCAN_SHARE >= rows:
            wanted = set(keys)
            with gc_paused():
                for row in tx.stream(f"SELECT {_COLUMNS} FROM images"):
                    if row[0] in wanted:
                        found[row[0]] = ImageRecord._make(row)
            return found
    with gc_paused():
        for start in range(0, len(keys), tx.lookup_batch):
            condition, args = tx.matches("image_key", keys[start : start + tx.lookup_batch])
            for row in tx.rows(f"SELECT {_COLUMNS} FROM images WHERE {condition}", args):
                found[row[0]] = ImageRecord._make(row)
    return found


def fingerprints(tx: Tx, keys: Sequence[str]) -> dict[str, str]:
    """The fingerprint of each known key of ``keys``."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), tx.lookup_batch):
        condition, args = tx.matches("image_key", keys[start : start + tx.lookup_batch])
        for key, fingerprint in tx.rows(
            f"SELECT image_key, fingerprint FROM images WHERE {condition}", args
        ):
            found[key] = fingerprint
    return found


def reopen_failed(tx: Tx, keys: Sequence[str], at: str) -> int:
    """Set failed images of ``keys`` back to ``planned``; the generation their new orders need
    (one above every order that held them)."""
    highest = 0
    for start in range(0, len(keys), tx.lookup_batch):
        condition, args = tx.matches("i.image_key", keys[start : start + tx.lookup_batch])
        top = tx.value(
            "SELECT max(o.generation) FROM images i JOIN orders o USING (order_key)"
            f" WHERE {condition}",
            args,
        )
        highest = max(highest, top or 0)
        condition, args = tx.matches("image_key", keys[start : start + tx.lookup_batch])
        tx.execute(
            "UPDATE images SET status = 'planned', output_uri = NULL, output_sha256 = NULL,"
            " error_code = NULL, error_message = NULL, updated_at = ?"
            f" WHERE status = 'failed' AND {condition}",
            (at, *args),
        )
    return highest + 1


def done(tx: Tx, outcomes: Sequence[ImageOutcome], at: str) -> None:
    """Record each image's final outcome (``processed`` unless an error code is given)."""
    tx.executemany(
        "UPDATE images SET status = ?, output_uri = ?, output_sha256 = ?, error_code = ?,"
        " error_message = ?, updated_at = ? WHERE image_key = ?",
        [
            (
                "failed" if o.error_code else "processed",
                o.output_uri,
                o.output_sha256,
                o.error_code,
                o.error_message,
                at,
                o.image_key,
            )
            for o in outcomes
        ],
    )


def fail_planned(tx: Tx, order_key: str, code: str, message: str, at: str) -> None:
    """The still-planned images of a failed order fail with it."""
    tx.execute(
        "UPDATE images SET status = 'failed', error_code = ?, error_message = ?, updated_at = ?"
        " WHERE order_key = ? AND status = 'planned'",
        (code, message, at, order_key),
    )


def move_planned(tx: Tx, old_key: str, new_key: str, at: str) -> None:
    """Move the still-planned images of ``old_key`` to ``new_key``."""
    tx.execute(
        "UPDATE images SET order_key = ?, updated_at = ?"
        " WHERE order_key = ? AND status = 'planned'",
        (new_key, at, old_key),
    )


def statuses(tx: Tx) -> dict[str, int]:
    """How many images are in each status."""
    return {
        status: int(n)
        for status, n in tx.rows("SELECT status, count(*) FROM images GROUP BY status")
    }
