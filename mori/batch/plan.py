"""Planning: split the images a run must send into deterministic orders of at most 100.

The plan is a pure function of the *set* of new images: sorted by image key, split by kind
(uploaded files vs public URLs, which use different endpoints), chunked. The same images give
the same orders and the same idempotency keys whatever the manifest's row order. Images the
ledger already holds are never planned again: they are skipped (done), re-attached to the
order that holds them, or, only when a run asks (``retry_failed``) and they failed for good,
planned into new orders of a higher key generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from mori import keys
from mori.batch import bulk
from mori.batch.ledger import ImageRecord, Ledger, Slot, make_slot
from mori.batch.manifest import Item
from mori.models import MAX_FILES_PER_ORDER


@dataclass(frozen=True)
class PlannedOrder:
    """An order the run will create (or resume): its key, kind and images in position order."""

    order_key: str
    kind: str  # "upload" | "url"
    slots: tuple[Slot, ...]
    generation: int = 0


def plan_orders(
    items: Sequence[Item], max_files: int = MAX_FILES_PER_ORDER, generation: int = 0
) -> list[PlannedOrder]:
    """Deterministic chunks of ≤ ``max_files`` new images, per kind, ordered by image key.

    ``generation`` goes into the order keys (see :func:`mori.keys.order_key`): images sent
    again after failing get orders, and MORI idempotency keys, that no earlier order had.
    """
    if not 1 <= max_files <= MAX_FILES_PER_ORDER:
        raise ValueError(f"max_files must be 1..{MAX_FILES_PER_ORDER}")
    # URL rows go through ``/orders/with-urls``; files and S3 objects are uploaded
    upload: list[Item] = []
    url: list[Item] = []
    for it in items:
        if it.image_key:
            (url if it.kind == "url" else upload).append(it)
    orders: list[PlannedOrder] = []
    with bulk.gc_paused():
        for kind, chosen in (("upload", upload), ("url", url)):
            chosen.sort(key=_image_key_of)  # stable, as sorted() was
            orders.extend(_chunks(chosen, kind, max_files, generation))
    return orders


def _chunks(
    chosen: list[Item], kind: str, max_files: int, generation: int
) -> Iterator[PlannedOrder]:
    """Consecutive orders of ``max_files`` sorted items of one kind."""
    for start in range(0, len(chosen), max_files):
        chunk = chosen[start : start + max_files]
        slots = tuple(
            [
                make_slot(
                    i,
                    it.image_key or "",
                    it.file_name or "",
                    it.location or "",
                    it.width,
                    it.height,
                )
                for i, it in enumerate(chunk)
            ]
        )
        order_key = keys.order_key((s.image_key for s in slots), generation)
        yield PlannedOrder(order_key, kind, slots, generation)


_image_key_of = attrgetter("image_key")


@dataclass
class Triage:
    """What a run does with each valid row, given what the ledger already knows."""

    new: list[Item]  # never seen: to be planned into new orders
    resume: list[str]  # keys of open orders (from earlier runs) holding some of the rows
    known: dict[str, ImageRecord]  # image key -> the ledger's record, for rows seen before
    #: Rows whose image failed for good in an earlier run, to be sent again (``retry_failed``).
    retried: list[Item] = field(default_factory=list)


def triage(items: Sequence[Item], ledger: Ledger | None, retry_failed: bool = False) -> Triage:
    """Split valid rows into new images and images the ledger already holds.

    With ``retry_failed``, images the ledger holds as ``failed`` are not known but ``retried``.
    ``ledger=None`` (no ledger exists yet: a dry run before any run) knows no image.
    """
    valid = [it for it in items if it.error_code is None and it.image_key]
    if ledger is None:
        return Triage(valid, [], {})
    known = ledger.images(it.image_key or "" for it in valid)
    new = [it for it in valid if it.image_key not in known] if known else valid
    retried: list[Item] = []
    failed = {k for k, rec in known.items() if rec.status == "failed"} if retry_failed else set()
    if failed:
        retried = [it for it in valid if it.image_key in failed]
        known = {k: rec for k, rec in known.items() if k not in failed}
    open_keys = {rec.order_key for rec in known.values() if rec.status == "planned"}
    resume = (
        [o.order_key for o in ledger.open_orders() if o.order_key in open_keys] if open_keys else []
    )
    return Triage(new, resume, known, retried)


def triage_and_plan(
    items: Sequence[Item],
    ledger: Ledger | None,
    max_files: int = MAX_FILES_PER_ORDER,
    retry_failed: bool = False,
    *,
    dry_run: bool = False,
) -> tuple[Triage, list[PlannedOrder]]:
    """:func:`triage`, then :func:`plan_orders` of the new images and of the retried ones.

    The retried images' orders need a generation above every order that held them, which
    :meth:`Ledger.reopen_failed` reserves (setting the images back to ``planned``). A
    ``dry_run`` writes nothing: its retried orders are planned at generation 1, which gives
    the same number of orders of the same images (only their keys may differ).
    """
    found = triage(items, ledger, retry_failed)
    planned = plan_orders(found.new, max_files)
    if found.retried:
        keys_ = [it.image_key or "" for it in found.retried]
        generation = 1 if dry_run or ledger is None else ledger.reopen_failed(keys_)
        planned += plan_orders(found.retried, max_files, generation)
    return found, planned


#: Called with the triage and the planned orders before any intent is recorded; it raises to
#: refuse the plan (nothing is recorded then).
Approval = Callable[[Triage, list[PlannedOrder]], None]


def plan_and_record(
    items: Sequence[Item],
    ledger: Ledger,
    max_files: int = MAX_FILES_PER_ORDER,
    output_uri: str | None = None,
    retry_failed: bool = False,
    approve: Approval | None = None,
) -> tuple[Triage, list[PlannedOrder]]:
    """:func:`triage_and_plan` and :func:`record_intent` as one step.

    ``retry_failed`` (an explicit choice, never a default) sends images that failed for good in
    earlier runs again, in new orders of a generation above every order that held them.
    ``approve`` sees the plan before its intent is recorded, and may refuse it by raising:
    then the transaction is rolled back and the ledger is as it was.

    It runs under the ledger's write lock, so no other run plans between our triage and our
    intent (two overlapping runs would both plan the same images otherwise), and with the
    garbage collector paused: a million-row plan makes millions of small objects, and the
    collector's passes over them cost a quarter of the time.
    """
    with ledger.exclusive(), bulk.gc_paused():
        found, planned = triage_and_plan(items, ledger, max_files, retry_failed)
        if approve is not None:
            approve(found, planned)
        record_intent(planned, items, ledger, output_uri)  # durable before any order exists
    return found, planned


def record_intent(
    orders: Sequence[PlannedOrder],
    items: Sequence[Item],
    ledger: Ledger,
    output_uri: str | None = None,
) -> None:
    """Commit every planned order's images to the ledger before anything is sent to MORI.

    One transaction for the whole plan: either every order's intent is recorded, or none is.
    ``output_uri``: where this run writes the outputs, so that whoever finishes an order later
    (``finalize``, ``reconcile``) writes them to the same place.
    """
    if not orders:
        return
    # Every URL row's fingerprint is ``url:<location>`` (see manifest.classify); proven here in
    # manifest order, which is far cheaper than slot by slot in the ledger (a million rows).
    urls_vouched = all(
        it.fingerprint == "url:" + (it.location or "")
        for it in items
        if it.kind == "url" and it.image_key
    )
    fingerprints = {
        it.image_key: it.fingerprint or ""
        for it in items
        if it.image_key and not (urls_vouched and it.kind == "url")
    }
    ledger.plan_many(
        ((o.order_key, o.kind, o.slots, o.generation) for o in orders),
        fingerprints,
        url_fingerprints=urls_vouched,
        output_uri=output_uri,
    )
