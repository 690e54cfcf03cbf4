"""The ``fanout_groups`` and ``fanout_children`` tables: a run's orders handed to child runs.

A ``protect`` run that fans out records each group (its order keys and the attempt) before it
starts the child run, so that the same run, retried, finds its groups again and re-attaches to
the same child runs (whose idempotency keys derive from the run, the group and the attempt)
instead of grouping its orders anew. Each child run records what it asked of MORI (requests,
retries, 429s) when it ends, so that the run's audit counts every request made for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from mori.batch.ledger._store import Tx
from mori.batch.ledger.records import DispatchRecord

__all__ = ["child_totals", "for_run", "record", "record_child", "set_child"]


def record(
    tx: Tx, run_id: str, group: int, attempt: int, order_keys: Sequence[str], at: str
) -> None:
    """Record (or move to a new attempt) one group of ``run_id``; its child is not known yet."""
    tx.execute(
        "INSERT INTO fanout_groups"
        " (run_id, group_no, attempt, order_keys, child_run_id, dispatched_at)"
        " VALUES (?, ?, ?, ?, NULL, ?)"
        " ON CONFLICT (run_id, group_no) DO UPDATE SET attempt = excluded.attempt,"
        " order_keys = excluded.order_keys, dispatched_at = excluded.dispatched_at,"
        " child_run_id = CASE WHEN fanout_groups.attempt = excluded.attempt"
        " THEN fanout_groups.child_run_id END",
        (run_id, group, attempt, " ".join(order_keys), at),
    )


def set_child(tx: Tx, run_id: str, group: int, attempt: int, child_run_id: str) -> None:
    """The child run that drives an attempt of a group."""
    tx.execute(
        "UPDATE fanout_groups SET child_run_id = ?"
        " WHERE run_id = ? AND group_no = ? AND attempt = ?",
        (child_run_id, run_id, group, attempt),
    )


def for_run(tx: Tx, run_id: str) -> list[DispatchRecord]:
    """Every group ``run_id`` recorded, by group number."""
    rows = tx.rows(
        "SELECT run_id, group_no, attempt, order_keys, child_run_id, dispatched_at"
        " FROM fanout_groups WHERE run_id = ? ORDER BY group_no",
        (run_id,),
    )
    return [
        DispatchRecord(run, group, attempt, tuple(keys.split()), child, at)
        for run, group, attempt, keys, child, at in rows
    ]


def record_child(
    tx: Tx, ticket: str, run_id: str, requests: int, retries: int, rate_limited: int, at: str
) -> None:
    """What one child run (``ticket``) of ``run_id`` asked of MORI, set once it ends."""
    tx.execute(
        "INSERT INTO fanout_children"
        " (ticket, run_id, requests, retries, rate_limited, finished_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (ticket) DO UPDATE SET requests = excluded.requests,"
        " retries = excluded.retries, rate_limited = excluded.rate_limited,"
        " finished_at = excluded.finished_at",
        (ticket, run_id, requests, retries, rate_limited, at),
    )


def child_totals(tx: Tx, run_id: str) -> tuple[int, int, int]:
    """Requests, retries and 429s of every child run of ``run_id`` that recorded them."""
    row = tx.rows(
        "SELECT coalesce(sum(requests), 0), coalesce(sum(retries), 0),"
        " coalesce(sum(rate_limited), 0) FROM fanout_children WHERE run_id = ?",
        (run_id,),
    )[0]
    return int(row[0]), int(row[1]), int(row[2])
