"""Time for leases without waiting: age every claim in a ledger's database by some seconds."""

from __future__ import annotations

import sqlite3

import psycopg


def execute(url: str, sql: str) -> None:
    """Run one statement on a ledger's database (SQLite path or PostgreSQL URL), behind the
    ledger's back."""
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn:
            conn.execute(sql)
    else:
        with sqlite3.connect(url) as db:
            db.execute(sql)


def lapse(url: str, seconds: float = 3600.0) -> None:
    """Make every lease run out ``seconds`` earlier, as if that much time had passed (leases are
    judged by the database's clock, which a test cannot move)."""
    execute(url, f"UPDATE order_claims SET lease_until = lease_until - {float(seconds)}")
