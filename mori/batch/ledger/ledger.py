"""The :class:`Ledger`: durable intent and progress per image and per order, in one database.

*Intent before side effect*: which images an order holds is committed here, under the order's
deterministic key, before the order is created at MORI; each later step (created, uploaded,
confirmed, complete, downloaded) is committed before the next begins. A rerun after a crash at
any point finds the order again by its key and resumes it, with the same idempotency keys,
instead of creating a new one.

Two backends, one behaviour. SQLite (a path, default ``<audit>/ledger.sqlite``): one file in
WAL mode, no server, shared safely by the processes of one machine (a batch run, the webhook
receiver). PostgreSQL (``postgresql://...``): one database shared by every host of a
scaled-out deployment and any number of webhook receivers, through a connection pool; each
operation is a transaction retried after a lost connection, which is safe because every
operation is idempotent.

Processes on several hosts also coordinate here: each order's *claim* (which process drives it
now, with a lease judged by the database's clock; :mod:`mori.batch.ledger.claims`) and the
groups of orders a fanned-out run handed to child runs (:mod:`mori.batch.ledger.dispatches`).

Nothing secret is stored: no API key, no presigned URL (a create replayed with the same
idempotency key hands the upload URLs back), no webhook signature. A URL's password never
appears in a ``repr``, a log line or an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pyarrow as pa

from mori.batch.ledger import claims as claims_repo
from mori.batch.ledger import dispatches as dispatches_repo
from mori.batch.ledger import events as events_repo
from mori.batch.ledger import images as images_repo
from mori.batch.ledger import intent, window
from mori.batch.ledger import objects as objects_repo
from mori.batch.ledger import orders as orders_repo
from mori.batch.ledger._retry import RetryPolicy
from mori.batch.ledger._sqlite import SqliteStore
from mori.batch.ledger._store import Store, Tx
from mori.batch.ledger.objects import SourceObject
from mori.batch.ledger.records import (
    ORDER_FIELDS,
    ClaimRecord,
    DispatchRecord,
    EventRecord,
    ImageOutcome,
    ImageRecord,
    OrderRecord,
    PlannedIntent,
    Slot,
    now_iso,
)
from mori.batch.ledger.schema import migrate, version
from mori.batch.ledger.target import parse_target
from mori.batch.ledger.window import WindowOrder

__all__ = ["Ledger", "LedgerOptions", "open_ledger"]


@dataclass(frozen=True)
class LedgerOptions:
    """Tuning of a ledger's connections (the defaults suit production)."""

    #: SQLite: how long a writer waits for another process's write lock, in seconds.
    busy_timeout: float = 30.0
    #: PostgreSQL: retries of a transaction after a lost connection.
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: PostgreSQL: most connections the pool opens.
    pool_size: int = 10


class Ledger:
    """Thread-safe access to one ledger, SQLite or PostgreSQL (see :func:`open_ledger`)."""

    def __init__(self, target: str | Path, *, options: LedgerOptions | None = None) -> None:
        spec = parse_target(target)
        opts = options or LedgerOptions()
        store: Store
        if spec.path is not None:
            store = SqliteStore(spec.path, busy_timeout=opts.busy_timeout)
        else:
            from mori.batch.ledger._postgres import PostgresStore

            store = PostgresStore(spec.url or "", opts.retry, opts.pool_size)
        try:
            migrate(store)
        except BaseException:
            store.close()
            raise
        self._store = store
        self._path: Path | str = spec.path if spec.path is not None else store.description

    # -- what it is ----------------------------------------------------------------------------

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """``sqlite`` or ``postgresql``."""
        return self._store.dialect

    @property
    def location(self) -> str:
        """Where the ledger lives, safe to print (a URL's password masked)."""
        return self._store.description

    @property
    def store(self) -> Store:
        """The store core under the repositories (connections, transactions, migrations)."""
        return self._store

    @property
    def path(self) -> Path | str:
        """The SQLite file, or the PostgreSQL URL with its password masked."""
        return self._path

    def __repr__(self) -> str:
        return f"Ledger({self.location!r})"

    def schema_version(self) -> int:
        """The highest schema migration the database has."""
        return self._store.read(version)

    def close(self) -> None:
        """Release the connections."""
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the planning lock (against every process and host) for a read-then-write
        sequence.

        Planning reads which images are known, then records new orders for the others; two runs
        doing that at once would both plan the same images. Inside this block every read and
        write of this thread on this ledger object is one transaction; other planners wait.
        SQLite: ``BEGIN IMMEDIATE`` (other writers wait up to the busy timeout; readers never
        wait). PostgreSQL: a transaction holding ``pg_advisory_xact_lock`` (readers and
        webhook events never wait).
        """
        return self._store.exclusive()

    # -- images --------------------------------------------------------------------------------

    def images(self, image_keys: Iterable[str]) -> dict[str, ImageRecord]:
        """The ledger's record of each known image key."""
        keys = list(image_keys)
        return self._store.read(lambda tx: images_repo.lookup(tx, keys))

    def reopen_failed(self, image_keys: Sequence[str]) -> int:
        """Set images that failed for good back to ``planned``, to send them again.

        Returns the generation their new orders need: one above every order that held them
        (each image's current order is its latest: replacements only raise the generation), so
        the new orders' keys, and MORI idempotency keys, are new. Call it in the transaction
        that records the new orders (see :func:`mori.batch.plan.plan_and_record`).
        """
        keys, at = list(image_keys), now_iso()

        def work(tx: Tx) -> int:
            tx.lock_planning()
            return images_repo.reopen_failed(tx, keys, at)

        return self._store.write(work)

    def image_done(
        self,
        image_key: str,
        output_uri: str | None,
        output_sha256: str | None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Record one image's final outcome (``processed`` unless an error code is given)."""
        self.images_done(
            [ImageOutcome(image_key, output_uri, output_sha256, error_code, error_message)]
        )

    def images_done(self, outcomes: Iterable[ImageOutcome]) -> None:
        """Record many images' final outcomes in one transaction: all of them, or none."""
        rows, at = list(outcomes), now_iso()
        if rows:
            self._store.write(lambda tx: images_repo.done(tx, rows, at))

    def image_records(self, image_keys: Sequence[str]) -> pa.Table:
        """:meth:`images` as columns (:data:`~mori.batch.ledger.window.RECORD_SCHEMA`), for very
        many keys: give them sorted."""
        keys = list(image_keys)
        return self._store.read(lambda tx: window.image_records(tx, keys))

    def image_statuses(self) -> dict[str, int]:
        """How many images are in each status."""
        return self._store.read(images_repo.statuses)

    # -- orders --------------------------------------------------------------------------------

    def plan(
        self,
        order_key: str,
        kind: str,
        slots: Sequence[Slot],
        fingerprints: Mapping[str, str],
        generation: int = 0,
        output_uri: str | None = None,
    ) -> None:
        """Record an order's intent: its images, before it exists at MORI. Idempotent."""
        self.plan_many([(order_key, kind, slots, generation)], fingerprints, output_uri=output_uri)

    def plan_many(
        self,
        orders: Iterable[PlannedIntent],
        fingerprints: Mapping[str, str],
        *,
        url_fingerprints: bool = False,
        output_uri: str | None = None,
    ) -> None:
        """:meth:`plan` for many orders in one transaction: all of them are recorded, or none.

        ``orders`` holds ``(order_key, kind, slots, generation)``; ``fingerprints`` maps every
        slot's image key to its fingerprint; ``output_uri`` is where the planning run writes
        the orders' outputs (``finalize`` and ``reconcile`` write there too). With
        ``url_fingerprints`` the caller vouches that every slot of a ``url`` order has the
        fingerprint ``url:<location>`` (as every URL row of a manifest has), and those slots
        need no entry in ``fingerprints``. Takes the planning lock; the bulk paths of each
        backend are in :mod:`mori.batch.ledger.intent`.
        """
        planned = list(orders)
        at = now_iso()
        bulk = sum(len(slots) for _, _, slots, _ in planned) >= intent.BULK_ROWS
        self._store.write(
            lambda tx: intent.record_intents(
                tx, planned, fingerprints, url_fingerprints, output_uri, at
            ),
            bulk=bulk,
        )

    def record_window(
        self, orders: Sequence[WindowOrder], slots: pa.Table, output_uri: str | None = None
    ) -> None:
        """Record the intent of new orders holding only new images, inserted as they are (see
        :func:`mori.batch.ledger.window.record_window`): all of them, or none and
        :class:`~mori.batch.ledger.window.WindowConflict` when the ledger holds one already."""
        at = now_iso()
        self._store.write(
            lambda tx: window.record_window(tx, orders, slots, output_uri, at),
            bulk=slots.num_rows >= intent.BULK_ROWS,
        )

    def order_stamps(self, order_keys: Sequence[str]) -> pa.Table:
        """The ids and times of many orders, as columns
        (:data:`~mori.batch.ledger.window.STAMP_SCHEMA`)."""
        keys = list(order_keys)
        return self._store.read(lambda tx: window.order_stamps(tx, keys))

    def order(self, order_key: str) -> OrderRecord:
        """The record of one order (``KeyError`` when the ledger does not hold it)."""
        record = self._store.read(lambda tx: orders_repo.get(tx, order_key))
        if record is None:
            raise KeyError(order_key)
        return record

    def order_by_id(self, order_id: str) -> OrderRecord | None:
        """The order MORI knows as ``order_id`` (the latest generation holding it), if any."""
        return self._store.read(lambda tx: orders_repo.by_mori_id(tx, order_id))

    def slots(self, order_key: str) -> list[Slot]:
        """An order's images, by position."""
        return self._store.read(lambda tx: orders_repo.slots(tx, order_key))

    def open_orders(self) -> list[OrderRecord]:
        """Orders that are neither downloaded, failed nor abandoned, in planning order."""
        return self._store.read(orders_repo.open_orders)

    def orders(self) -> list[OrderRecord]:
        """Every order, in planning order."""
        return self._store.read(orders_repo.all_orders)

    def order_count(self) -> int:
        """How many orders the ledger holds."""
        return self._store.read(orders_repo.count)

    def advance(self, order_key: str, status: str, **fields: Any) -> None:
        """Move an order to ``status`` (stamping ``<status>_at``) and set ``fields``."""
        stamp = {"complete": "completed_at"}.get(status, f"{status}_at")
        at = now_iso()
        if stamp in ORDER_FIELDS:
            fields.setdefault(stamp, at)
        fields.update(status=status, updated_at=at)
        self._store.write(lambda tx: orders_repo.advance(tx, order_key, fields))

    def fail_order(self, order_key: str, code: str, message: str) -> None:
        """The order failed for good: it and its still-planned images are ``failed``."""
        at = now_iso()

        def work(tx: Tx) -> None:
            orders_repo.fail(tx, order_key, code, message, at)
            images_repo.fail_planned(tx, order_key, code, message, at)

        self._store.write(work)

    def replace(self, old_key: str, new_key: str, slots: Sequence[Slot], generation: int) -> None:
        """Abandon a never-confirmed order and move its images to a new one (new key).

        One transaction: the new order's intent, its images moved, the old order abandoned.
        """
        at = now_iso()

        def work(tx: Tx) -> None:
            tx.lock_planning()
            old = orders_repo.get(tx, old_key)
            if old is None:
                raise KeyError(old_key)
            fingerprints = images_repo.fingerprints(tx, [s.image_key for s in slots])
            planned = [(new_key, old.kind, slots, generation)]
            intent.record_intents(tx, planned, fingerprints, False, old.output_uri, at)
            images_repo.move_planned(tx, old_key, new_key, at)
            orders_repo.abandon(tx, old_key, new_key, at)

        self._store.write(work)

    # -- objects of listed sources -------------------------------------------------------------

    def source_objects(self, locations: Sequence[str]) -> dict[str, SourceObject]:
        """What was read from each known location of ``locations`` (a listed source's objects)."""
        return self._store.read(lambda tx: objects_repo.lookup(tx, list(locations)))

    def remember_source_objects(self, objects: Iterable[SourceObject]) -> None:
        """Record what was read from objects of a listed source (replacing older rows)."""
        rows, at = list(objects), now_iso()
        if rows:
            self._store.write(lambda tx: objects_repo.remember(tx, rows, at))

    # -- claims: who drives an order now (see mori.batch.ledger.claims) ------------------------

    def claim(
        self,
        order_keys: Sequence[str],
        owner: str,
        lease_seconds: float,
        ticket: str | None = None,
        *,
        host_id: str | None = None,
        pid: int | None = None,
        gone: Sequence[str] = (),
    ) -> list[str]:
        """Claim every open order of ``order_keys`` nobody else holds, for ``lease_seconds``
        (the database's clock); the keys ``owner`` now holds. Idempotent for its owner.

        ``host_id`` and ``pid`` say where the owner runs; claims of the owners in ``gone``
        (processes known to have ended) are taken even while their lease lasts.
        """
        keys, at = list(order_keys), now_iso()
        who = claims_repo.Claimant(owner, lease_seconds, ticket, host_id, pid, tuple(gone))
        return self._store.write(lambda tx: claims_repo.claim(tx, keys, who, at))

    def renew_claims(
        self, order_keys: Sequence[str], owner: str, lease_seconds: float
    ) -> list[str]:
        """Extend ``owner``'s claims by ``lease_seconds`` from now; the keys it still holds (a
        claim another owner took over after its lease ran out is not among them)."""
        keys = list(order_keys)
        return self._store.write(lambda tx: claims_repo.renew(tx, keys, owner, lease_seconds))

    def release_claims(self, order_keys: Sequence[str], owner: str) -> None:
        """``owner`` lets go of its claims of ``order_keys``."""
        keys, at = list(order_keys), now_iso()
        self._store.write(lambda tx: claims_repo.release(tx, keys, owner, at))

    def claims(self, order_keys: Iterable[str]) -> dict[str, ClaimRecord]:
        """The claim of each of ``order_keys`` that was ever claimed (liveness judged now)."""
        keys = list(order_keys)
        return self._store.read(lambda tx: claims_repo.lookup(tx, keys))

    # -- fan-out: groups of a run's orders handed to child runs --------------------------------

    def record_dispatch(
        self, run_id: str, group: int, attempt: int, order_keys: Sequence[str]
    ) -> None:
        """Record a group of ``run_id`` (or its next attempt) before its child run starts."""
        keys, at = list(order_keys), now_iso()
        self._store.write(lambda tx: dispatches_repo.record(tx, run_id, group, attempt, keys, at))

    def set_dispatch_child(self, run_id: str, group: int, attempt: int, child_run_id: str) -> None:
        """The child run that drives an attempt of a group."""
        self._store.write(
            lambda tx: dispatches_repo.set_child(tx, run_id, group, attempt, child_run_id)
        )

    def dispatches(self, run_id: str) -> list[DispatchRecord]:
        """The groups ``run_id`` handed out, by group number (latest attempt of each)."""
        return self._store.read(lambda tx: dispatches_repo.for_run(tx, run_id))

    def record_child_stats(self, ticket: str, run_id: str, stats: Mapping[str, int]) -> None:
        """What a child run of ``run_id`` asked of MORI: ``requests``, ``retries``,
        ``rate_limited`` (set, so recording it again changes nothing)."""
        requests, retries, limited = (
            int(stats.get(k, 0)) for k in ("requests", "retries", "rate_limited")
        )
        at = now_iso()
        self._store.write(
            lambda tx: dispatches_repo.record_child(
                tx, ticket, run_id, requests, retries, limited, at
            )
        )

    def child_stats(self, run_id: str) -> dict[str, int]:
        """``requests``, ``retries`` and ``rate_limited`` summed over ``run_id``'s children."""
        totals = self._store.read(lambda tx: dispatches_repo.child_totals(tx, run_id))
        return dict(zip(("requests", "retries", "rate_limited"), totals, strict=True))

    # -- webhook events ------------------------------------------------------------------------

    def record_event(
        self, event_id: str, event_type: str, order_id: str, status: str, payload: dict[str, Any]
    ) -> bool:
        """Store a verified webhook event once; ``False`` if its ``eventId`` was seen before.

        Never waits for the planning lock. After a lost connection whose commit went through,
        the retry finds the event stored and answers ``False``: the event is stored once either
        way.
        """
        at = now_iso()
        return self._store.write(
            lambda tx: events_repo.record(tx, event_id, event_type, order_id, status, payload, at)
        )

    def event_status(self, order_id: str) -> str | None:
        """The terminal status a webhook reported for an order, if any arrived."""
        return self._store.read(lambda tx: events_repo.status(tx, order_id))

    def events(self, order_id: str | None = None) -> list[EventRecord]:
        """The stored webhook events (of one MORI order, when given), in arrival order."""
        return self._store.read(lambda tx: events_repo.list_events(tx, order_id))


def open_ledger(target: str | Path, options: LedgerOptions | None = None) -> Ledger:
    """The ledger at ``target``: a path or ``sqlite:///abs/path`` (SQLite), or a
    ``postgresql://`` / ``postgres://`` URL (PostgreSQL); its schema brought up to date."""
    return Ledger(target, options=options)
