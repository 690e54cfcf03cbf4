"""Drive one order through MORI: create, upload, confirm, wait, download, verify, write.

Each step is committed to the ledger before the next one starts, and every call that changes
state at MORI carries the order's deterministic idempotency key, so :meth:`OrderProcessor.process`
can be called again on the same order key at any point (a task retry, a rerun after a crash)
and it resumes where the ledger says, without a second order or a second confirm.

With a :class:`~mori.batch.claims.ClaimHolder`, one process at a time drives an order: it is
claimed before its first step and released after its last. A run that finds an order claimed
by another live process (another run, another host) waits for it instead of driving it too:
two drivers of one order could otherwise see its upload links closed by the other's confirm and
replace it, and MORI would process its images twice.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mori import keys
from mori.batch.archive import extract_outputs
from mori.batch.claims import ClaimHolder
from mori.batch.codes import ErrorCode
from mori.batch.completion import CompletionWaiter
from mori.batch.ledger import ImageOutcome, Ledger, OrderRecord, Slot
from mori.batch.outputs import Verification, content_type, write_output
from mori.batch.pool import TransferPool
from mori.batch.progress import OrderEvent, OrderObserver
from mori.batch.results import ImageResult as ImageResult
from mori.batch.results import OrderResult as OrderResult
from mori.batch.results import image_results, result_from_ledger, settled_elsewhere
from mori.batch.storage import NotFound, Storage
from mori.client import MoriClient
from mori.errors import (
    BadRequestError,
    ConflictError,
    UnexpectedResponseError,
    URLExpiredError,
)
from mori.models import OrderError, UrlFileSpec


@dataclass(frozen=True)
class OrderSettings:
    """How orders are driven."""

    output_uri: str
    wait_timeout: float
    #: Uploads and output writes at once, across every order of the processor (one pool).
    transfer_threads: int = 16
    #: Orders whose results are downloaded, checked and written at once: each holds its whole
    #: result archive in memory, so this bounds memory however many orders are driven at once.
    downloads_at_once: int = 4
    #: How much of each output is checked before it is written (:mod:`mori.batch.outputs`).
    verification: Verification = "header"
    order_name_prefix: str = "mori-pipeline"
    options: dict[str, Any] | None = None
    max_replacements: int = 3
    #: Write each order's outputs where the run that planned it writes (recorded in the
    #: ledger), ``output_uri`` only for orders without one: how ``finalize`` works.
    output_from_ledger: bool = False


log = logging.getLogger("mori.batch.orders")

#: The claimed order key of the order this thread drives.
_DRIVING: contextvars.ContextVar[str] = contextvars.ContextVar("driving")


class OrderProcessor:
    """Resumable, idempotent processing of planned orders."""

    def __init__(
        self,
        client: MoriClient,
        ledger: Ledger,
        storage: Storage,
        waiter: CompletionWaiter,
        settings: OrderSettings,
        observer: OrderObserver | None = None,
        claims: ClaimHolder | None = None,
    ) -> None:
        self.client, self.ledger, self.storage = client, ledger, storage
        self.waiter, self.settings, self.claims = waiter, settings, claims
        self.observer = observer
        self.transfers = TransferPool(settings.transfer_threads)
        self._downloading = threading.BoundedSemaphore(settings.downloads_at_once)

    def close(self) -> None:
        """Stop the transfer threads (they start again if the processor is used again)."""
        self.transfers.close()

    # -- the whole path ------------------------------------------------------------------------

    def process(self, order_key: str) -> OrderResult:
        """Take an order from wherever the ledger says it is to a final (or pending) outcome.

        With claims: claim it first, waiting up to the wait timeout while another live process
        drives it. If that process finished it meanwhile, its result is ``skipped`` here; if it
        still drives it at the end, ``pending`` (this run leaves it alone).

        The observer hears ``completed`` or ``failed`` once the order reaches that outcome in
        this call (not for an order the ledger already had as final, or another process drove).
        """
        if self.claims is None:
            return self._notified(self._process(order_key))
        elsewhere = self._claim(order_key, self.claims)
        if elsewhere is not None:
            return elsewhere
        token = _DRIVING.set(order_key)
        try:
            return self._notified(self._process(order_key))
        finally:
            _DRIVING.reset(token)
            self.claims.release([order_key])

    def _notified(self, result: OrderResult) -> OrderResult:
        """``result``, after telling the observer that its order completed or failed now."""
        if not result.from_ledger and result.status in ("processed", "failed"):
            counts = [img.status for img in result.images.values()]
            self._notify(
                OrderEvent(
                    "completed" if result.status == "processed" else "failed",
                    result.order_key,
                    result.order_id,
                    len(counts),
                    processed=counts.count("processed"),
                    failed=counts.count("failed"),
                    error_code=result.error_code,
                )
            )
        return result

    def _claim(self, order_key: str, claims: ClaimHolder) -> OrderResult | None:
        """``None`` once this process holds the order, else its result here (see process)."""
        deadline = self.waiter.clock() + self.settings.wait_timeout
        while not claims.claim([order_key]):
            result = result_from_ledger(self.ledger, order_key)
            if result.status != "pending":
                return settled_elsewhere(result)
            if self.waiter.clock() >= deadline:
                reason = f"another process ({claims.holder(order_key)}) drives it"
                return settled_elsewhere(result_from_ledger(self.ledger, order_key, reason))
            self.waiter.sleep(self.waiter.poll_interval)
        return None

    def _step_done(self) -> None:
        """Stop before the next step if another process took the order over."""
        if self.claims is not None:
            self.claims.check(_DRIVING.get(None))

    def _process(self, order_key: str) -> OrderResult:
        record = self.ledger.order(order_key)
        replaced: list[str] = []
        while record.status == "abandoned" and record.replaced_by:
            replaced.append(record.order_key)
            record = self.ledger.order(record.replaced_by)
        slots = self.ledger.slots(record.order_key)
        try:
            result = self._drive(record, slots)
        except _Replace as rep:
            if len(replaced) >= self.settings.max_replacements:
                raise
            self._replace(record, slots, rep.reason)
            return self._process(order_key)
        except _Split as split:  # some files failed at MORI: fail them, send the rest again
            outcomes = [
                ImageOutcome(
                    slot.image_key,
                    None,
                    None,
                    err.code or ErrorCode.FILE_FAILED,
                    err.message or "MORI could not process it",
                )
                for slot, err in split.culprits
            ]
            self.ledger.images_done(outcomes)
            failed = {o.image_key: _image_result(o) for o in outcomes}
            survivors = [s for s in slots if s.image_key not in failed]
            survivors = [dataclasses.replace(s, position=i) for i, s in enumerate(survivors)]
            self._replace(record, survivors, f"{len(failed)} of {len(slots)} files failed")
            result = self._process(order_key)
            result.images.update(failed)
            return result
        except (BadRequestError, ConflictError) as exc:  # MORI refused the order itself
            message = exc.detail_message
            self.ledger.fail_order(record.order_key, exc.code or "REJECTED", message)
            result = self._failed(record, slots, exc.code or "REJECTED", message)
        except UnexpectedResponseError as exc:  # MORI may have acted: a rerun replays the key
            reason = f"MORI's answer could not be read; the order stays resumable ({exc})"
            result = self._pending(self.ledger.order(record.order_key), slots, exc.code, reason)
        except _OrderFailed as exc:
            self.ledger.fail_order(record.order_key, exc.code, exc.message)
            result = self._failed(record, slots, exc.code, exc.message)
        result.replaced = replaced
        result.record = self.ledger.order(result.order_key)
        return result

    def _drive(self, record: OrderRecord, slots: list[Slot]) -> OrderResult:
        key = record.order_key
        if record.status in ("failed", "downloaded"):
            return self._from_ledger(record, slots)
        order_id = record.order_id
        if not record.reached("confirmed"):
            created = self._create(record, slots)
            order_id = created.order_id
            if record.kind == "upload":
                if not record.reached("uploaded"):
                    self._upload(key, slots, [f.upload_url for f in created.files])
                self._confirm(key, order_id, slots, [f.upload_url for f in created.files])
            else:
                self.ledger.advance(key, "confirmed")
        assert order_id is not None
        if not record.reached("complete"):
            status = self.waiter.wait(order_id, self.settings.wait_timeout)
            if status == "failed":
                info = self.client.get_order(order_id)
                err = info.errors[0] if info.errors else None
                code = (err.code if err else None) or ErrorCode.ORDER_FAILED
                message = (err.message if err else None) or "MORI reported the order as failed"
                culprits = _culprits(info.errors or [], slots)
                if culprits and len(culprits) < len(slots):
                    raise _Split(culprits)
                self.ledger.fail_order(key, code, message)
                return self._failed(self.ledger.order(key), slots, code, message)
            if status != "complete":
                reason = f"MORI is still processing order {order_id} (status {status})"
                return self._pending(
                    self.ledger.order(key), slots, ErrorCode.WAITING_FOR_MORI, reason
                )
            self.ledger.advance(key, "complete")
            self._step_done()
        return self._download(self.ledger.order(key), slots)

    # -- steps ---------------------------------------------------------------------------------

    def _create(self, record: OrderRecord, slots: list[Slot]) -> Any:
        name = f"{self.settings.order_name_prefix}-{record.order_key[:8]}"[:64]
        if record.kind == "url":
            created = self.client.create_url_order(
                [UrlFileSpec(file_name=s.file_name, original_file_url=s.location) for s in slots],
                idempotency_key=record.order_key,
                order_name=name,
                options=self.settings.options,
            )
        else:
            created = self.client.create_order(
                [s.file_name for s in slots],
                idempotency_key=record.order_key,
                order_name=name,
                options=self.settings.options,
            )
        if len(created.files) not in (0, len(slots)):
            raise RuntimeError(
                f"order {created.order_id} came back with {len(created.files)} files"
            )
        if not record.reached("created"):
            self.ledger.advance(
                record.order_key,
                "created",
                order_id=created.order_id,
                order_name=created.order_name,
            )
            self._notify(OrderEvent("created", record.order_key, created.order_id, len(slots)))
            self._step_done()
        return created

    def _upload(self, key: str, slots: list[Slot], urls: list[str | None]) -> None:
        expected = {
            k: rec.fingerprint for k, rec in self.ledger.images(s.image_key for s in slots).items()
        }

        def put(pair: tuple[Slot, str | None]) -> None:
            slot, url = pair
            if url is None:
                raise RuntimeError(f"MORI gave no upload URL for position {slot.position}")
            data = self.storage.read_bytes(slot.location)
            if keys.sha256_fingerprint(data) != expected.get(slot.image_key):
                raise _SourceChanged(slot)
            self.client.upload(url, data, content_type=content_type(slot.file_name))

        try:
            self.transfers.run_all(put, zip(slots, urls, strict=True))
        except URLExpiredError as exc:
            raise _Replace("upload URLs expired before every file was uploaded") from exc
        except (_SourceChanged, NotFound, OSError) as exc:
            raise _OrderFailed(
                ErrorCode.SOURCE_CHANGED, f"a source changed or vanished: {exc}"
            ) from exc
        self.ledger.advance(key, "uploaded")

    def _confirm(self, key: str, order_id: str, slots: list[Slot], urls: list[str | None]) -> None:
        try:
            self.client.confirm_order(order_id, idempotency_key=keys.confirm_key(key))
        except BadRequestError as exc:
            if exc.code != "FILES_NOT_UPLOADED":
                raise
            self._upload(key, slots, urls)  # an upload was lost: put every file again, once
            self.client.confirm_order(order_id, idempotency_key=keys.confirm_key(key))
        self.ledger.advance(key, "confirmed")
        self._step_done()

    def _download(self, record: OrderRecord, slots: list[Slot]) -> OrderResult:
        with self._downloading:  # the archive is in memory until its outputs are written
            outcomes = self._write_outputs(record, slots)
        self.ledger.images_done(outcomes)  # one transaction for the order's images
        result = OrderResult(record.order_key, record.kind, "processed", record.order_id)
        result.images = {o.image_key: _image_result(o) for o in outcomes}
        self.ledger.advance(record.order_key, "downloaded")
        self._step_done()
        return result

    def _write_outputs(self, record: OrderRecord, slots: list[Slot]) -> list[ImageOutcome]:
        """Download ``record``'s results, then check and write each image's output."""
        assert record.order_id is not None
        try:
            archive = self.client.download(self.client.get_download(record.order_id).download_url)
        except URLExpiredError:  # the link lapsed between issue and use: ask for a fresh one
            archive = self.client.download(self.client.get_download(record.order_id).download_url)
        entries = extract_outputs(archive, slots)
        outputs, verification = self.output_location(record), self.settings.verification
        return self.transfers.run_all(
            lambda s: write_output(self.storage, s, entries[s.position], outputs, verification),
            slots,
        )

    def output_location(self, record: OrderRecord) -> str:
        """The folder this processor writes ``record``'s outputs to."""
        if self.settings.output_from_ledger and record.output_uri:
            return record.output_uri
        return self.settings.output_uri

    def _replace(self, record: OrderRecord, slots: list[Slot], reason: str) -> None:
        generation = record.generation + 1
        new_key = keys.order_key((s.image_key for s in slots), generation)
        self.ledger.replace(record.order_key, new_key, slots, generation)
        log.info("order %s replaced by %s: %s", record.order_key[:8], new_key[:8], reason)
        self._step_done()

    def _notify(self, event: OrderEvent) -> None:
        """Tell the observer; an observer that fails never fails the order."""
        if self.observer is None:
            return
        try:
            self.observer(event)
        except Exception:
            log.exception("order observer failed on %s of %s", event.kind, event.order_key[:8])

    # -- outcomes ------------------------------------------------------------------------------

    def _from_ledger(self, record: OrderRecord, slots: list[Slot]) -> OrderResult:
        status = "processed" if record.status == "downloaded" else "failed"
        result = OrderResult(
            record.order_key,
            record.kind,
            status,
            record.order_id,
            record.error_code,
            record.error_message,
            from_ledger=True,
        )
        result.images = image_results(self.ledger, slots, "")
        return result

    def _failed(self, record: OrderRecord, slots: list[Slot], code: str, msg: str) -> OrderResult:
        return self._uniform(record, slots, "failed", code, msg)

    def _pending(self, record: OrderRecord, slots: list[Slot], code: str, msg: str) -> OrderResult:
        return self._uniform(record, slots, "pending", code, msg)

    @staticmethod
    def _uniform(
        record: OrderRecord, slots: list[Slot], status: str, code: str, msg: str
    ) -> OrderResult:
        result = OrderResult(record.order_key, record.kind, status, record.order_id, code, msg)
        for slot in slots:
            result.images[slot.image_key] = ImageResult(
                slot.image_key, status, error_code=code, error_message=msg
            )
        return result


class _Replace(Exception):
    """The order can no longer be confirmed as created; replace it with a new generation."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Split(Exception):
    """MORI failed the order because of some of its files; the others deserve a new order."""

    def __init__(self, culprits: list[tuple[Slot, OrderError]]) -> None:
        self.culprits = culprits
        super().__init__(f"{len(culprits)} files failed")


#: MORI names each failed file in the order's ``errors``: ``{index}/{fileName}: ...``.
_FILE_ERROR = re.compile(r"(\d+)/")


def _culprits(errors: Sequence[OrderError], slots: Sequence[Slot]) -> list[tuple[Slot, OrderError]]:
    """The slots that MORI's per-file errors name (by position and file name)."""
    by_position = {s.position: s for s in slots}
    found: dict[int, tuple[Slot, OrderError]] = {}
    for err in errors:
        match = _FILE_ERROR.match(err.message or "")
        slot = by_position.get(int(match.group(1))) if match else None
        if slot is not None and (err.message or "").startswith(f"{slot.position}/{slot.file_name}"):
            found[slot.position] = (slot, err)
    return list(found.values())


class _OrderFailed(Exception):
    """The order cannot succeed; its images fail with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


class _SourceChanged(Exception):
    def __init__(self, slot: Slot) -> None:
        super().__init__(f"{slot.location} no longer has the bytes that were planned")


def _image_result(outcome: ImageOutcome) -> ImageResult:
    """What this run reports for an image whose outcome it recorded."""
    status = "failed" if outcome.error_code else "processed"
    return ImageResult(outcome.image_key, status, *outcome[1:])
