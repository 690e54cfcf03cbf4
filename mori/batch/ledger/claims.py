"""The ``order_claims`` table: which process drives an order right now, for how long.

A claim is a lease: its owner (``host:pid``, see :mod:`mori.batch.claims`) holds an order until
``lease_until``, renews the lease while it works, and releases it when done. Claiming is one
conditional upsert per order: it succeeds when nobody holds the order, when the claim was
released, when its lease ran out, or when the claimant already holds it; otherwise it changes
nothing. So of any number of processes on any number of hosts, one at a time drives an order.
A claimant may also name owners it knows are gone (a process of its own host that no longer
exists): their claims are taken at once instead of when their lease runs out.

Leases are judged by the **database's** clock (PostgreSQL's ``clock_timestamp()``; SQLite's
``'now'``, the one host's clock), never by a client's, so hosts whose clocks disagree still
agree on whether a lease ran out. Only open orders are claimed (an order that was replaced
counts as its replacement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mori.batch.ledger._store import Tx
from mori.batch.ledger.records import TERMINAL, ClaimRecord

__all__ = ["Claimant", "claim", "lookup", "now_sql", "release", "renew"]

_NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "extract(epoch from clock_timestamp())::double precision",
}

_CLAIM = """INSERT INTO order_claims
    (order_key, owner, host_id, pid, ticket, lease_until, claimed_at, released_at, takeovers)
VALUES (?, ?, ?, ?, ?, {now} + ?, ?, NULL, 0)
ON CONFLICT (order_key) DO UPDATE SET
    owner = excluded.owner,
    host_id = excluded.host_id,
    pid = excluded.pid,
    ticket = excluded.ticket,
    lease_until = excluded.lease_until,
    claimed_at = excluded.claimed_at,
    released_at = NULL,
    takeovers = order_claims.takeovers + CASE
        WHEN order_claims.owner = excluded.owner OR order_claims.released_at IS NOT NULL
        THEN 0 ELSE 1 END
WHERE order_claims.owner = excluded.owner
    OR order_claims.released_at IS NOT NULL
    OR order_claims.lease_until < {now}{breakable}
RETURNING order_key"""


def now_sql(tx: Tx) -> str:
    """The database's current time in epoch seconds, as an SQL expression."""
    return _NOW[tx.dialect]


@dataclass(frozen=True)
class Claimant:
    """Who claims: the owner's name, host and process, the dispatch, the lease in seconds, and
    owners known to be gone (their live claims may be taken at once)."""

    owner: str
    lease: float
    ticket: str | None = None
    host_id: str | None = None
    pid: int | None = None
    gone: tuple[str, ...] = ()


def claim(tx: Tx, order_keys: Sequence[str], who: Claimant, at: str) -> list[str]:
    """Claim each open order of ``order_keys`` that nobody else holds; the keys now held."""
    breakable, gone = "", list[str]()
    if who.gone:
        condition, gone = tx.matches("order_claims.owner", list(who.gone))
        breakable = f"\n    OR {condition}"
    sql = _CLAIM.format(now=now_sql(tx), breakable=breakable)
    held = []
    for key in order_keys:
        args = (key, who.owner, who.host_id, who.pid, who.ticket, who.lease, at, *gone)
        if _is_open(tx, key) and tx.rows(sql, args):
            held.append(key)
    return held


def renew(tx: Tx, order_keys: Sequence[str], owner: str, lease: float) -> list[str]:
    """Extend ``owner``'s unreleased claims of ``order_keys``; the keys it still holds."""
    if not order_keys:
        return []
    condition, args = tx.matches("order_key", list(order_keys))
    rows = tx.rows(
        f"UPDATE order_claims SET lease_until = {now_sql(tx)} + ?"
        f" WHERE owner = ? AND released_at IS NULL AND {condition} RETURNING order_key",
        (lease, owner, *args),
    )
    return [row[0] for row in rows]


def release(tx: Tx, order_keys: Sequence[str], owner: str, at: str) -> None:
    """``owner`` lets go of its claims of ``order_keys`` (the owner stays recorded)."""
    if not order_keys:
        return
    condition, args = tx.matches("order_key", list(order_keys))
    tx.execute(
        f"UPDATE order_claims SET released_at = ?"
        f" WHERE owner = ? AND released_at IS NULL AND {condition}",
        (at, owner, *args),
    )


def lookup(tx: Tx, order_keys: Sequence[str]) -> dict[str, ClaimRecord]:
    """The claim of each of ``order_keys`` that was ever claimed."""
    found: dict[str, ClaimRecord] = {}
    now = now_sql(tx)
    for start in range(0, len(order_keys), tx.lookup_batch):
        condition, args = tx.matches("order_key", list(order_keys[start : start + tx.lookup_batch]))
        rows = tx.rows(
            "SELECT order_key, owner, host_id, pid, ticket,"
            f" CASE WHEN released_at IS NULL AND lease_until >= {now} THEN 1 ELSE 0 END,"
            " CASE WHEN released_at IS NULL THEN 0 ELSE 1 END,"
            f" lease_until - {now}, claimed_at, takeovers"
            f" FROM order_claims WHERE {condition}",
            args,
        )
        for key, owner, host, pid, ticket, live, released, left, at, takeovers in rows:
            found[key] = ClaimRecord(
                key,
                owner,
                host,
                pid,
                ticket,
                bool(live),
                bool(released),
                float(left),
                at,
                takeovers,
            )
    return found


def _is_open(tx: Tx, order_key: str) -> bool:
    """The order (or the replacement it was abandoned for) is neither downloaded nor failed."""
    seen: set[str] = set()
    key: str | None = order_key
    while key is not None and key not in seen:
        seen.add(key)
        rows = tx.rows("SELECT status, replaced_by FROM orders WHERE order_key = ?", (key,))
        if not rows:
            return False
        status, replaced_by = rows[0]
        if status != "abandoned":
            return status not in TERMINAL
        key = replaced_by
    return False
