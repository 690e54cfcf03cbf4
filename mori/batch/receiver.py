"""The webhook receiver: verify, record once, answer fast (invariant 7 of docs/ARCHITECTURE.md).

``POST /webhooks/mori`` reads the raw body (at most :data:`MAX_BODY` bytes → 413 past that),
verifies the generation's signature header (``X-Mori-Signature`` in G1, ``X-MoriBiz-Signature``
in G3) over those exact bytes in constant time (bad or missing → 401, nothing recorded), then
parses the event (malformed → 400; not an order-finished event → 202, ignored) and records it in
the ledger keyed by ``eventId`` (a duplicate delivery is acknowledged and ignored). Only after
that is recorded does it call ``on_event`` (e.g. start a Prefect ``finalize`` run), and a
failure there never turns a recorded delivery into an error MORI would retry.

It answers well inside MORI's 5 s deadline whatever the ledger does, and never blocks its event
loop: the ledger write runs on a thread of its own, and when it has not finished within
``record_budget`` seconds (a SQLite ledger write-locked by a large plan, a PostgreSQL ledger
restarting) the event goes to the receiver's :class:`~mori.batch.spool.EventSpool` instead,
which hands it to the ledger as soon as it can. The receiver keeps no other state, so any
number of them can answer behind one URL, all recording into one shared ledger.

Nothing secret is stored: the event's presigned ``downloadUrl`` is dropped before recording.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from mori.batch.ledger import Ledger
from mori.batch.spool import EventSpool, SpooledEvent
from mori.errors import InvalidEventError, SignatureVerificationError
from mori.models import WebhookEvent
from mori.settings import Generation
from mori.webhooks import parse_event, verify_request

MAX_BODY = 64 * 1024
PATH = "/webhooks/mori"
#: Seconds a delivery waits for the ledger before its event is spooled instead.
RECORD_BUDGET = 2.0
#: Ledger writes in flight at once (each on its own thread, off the event loop).
RECORD_THREADS = 8
log = logging.getLogger("mori.receiver")

EventHook = Callable[[WebhookEvent, bool], None]


def create_app(
    ledger: Ledger,
    secret: Callable[[], str | None],
    on_event: EventHook | None = None,
    *,
    generation: Generation = "g1",
    spool: EventSpool | None = None,
    record_budget: float = RECORD_BUDGET,
) -> FastAPI:
    """The receiver app for deliveries of API ``generation``. ``secret`` is read per request, so
    a rotated secret applies at once. Without a ``spool``, an event the ledger cannot take
    within ``record_budget`` is answered 503, and MORI delivers it again."""
    app = FastAPI(title="mori-pipeline webhook receiver", docs_url=None, redoc_url=None)
    app.state.received = 0
    app.state.duplicates = 0
    app.state.rejected = 0
    app.state.spooled = 0
    writers = ThreadPoolExecutor(RECORD_THREADS, thread_name_prefix="receiver-ledger")

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {
            "ok": True,
            "received": app.state.received,
            "duplicates": app.state.duplicates,
            "rejected": app.state.rejected,
            "spooled": app.state.spooled,
        }

    @app.post(PATH)
    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return _reject(app, 413, "body too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _reject(app, 413, "body too large")
        key = secret()
        if not key:
            return _reject(app, 503, "no webhook secret configured")
        try:
            verify_request(body, request.headers, key, generation)
        except SignatureVerificationError as exc:
            return _reject(app, 401, str(exc))
        try:
            event = parse_event(body)
        except InvalidEventError:
            return _reject(app, 400, "body is not a MORI event")
        if not event.is_order_finished:
            return JSONResponse({"ok": True, "ignored": event.event_type}, status_code=202)
        payload = event.model_dump(mode="json", by_alias=True)
        payload["data"].pop("downloadUrl", None)
        record = SpooledEvent(
            event.event_id, event.event_type, event.data.order_id, event.data.status, payload
        )
        write = writers.submit(
            ledger.record_event,
            record.event_id,
            record.event_type,
            record.order_id,
            record.status,
            record.payload,
        )
        try:
            new = await asyncio.wait_for(asyncio.wrap_future(write), record_budget)
        except Exception as exc:  # too slow or failing: the spool keeps it for the ledger
            if spool is None:
                log.warning("event %s not recorded (%s); MORI will resend it", event.event_id, exc)
                return _reject(app, 503, "the ledger is not available")
            await asyncio.to_thread(spool.put, record)
            app.state.spooled += 1
            new = True
        app.state.received += 1
        if not new:
            app.state.duplicates += 1
        if on_event is not None:
            try:
                on_event(event, new)
            except Exception:
                log.exception("on_event hook failed for event %s (recorded)", event.event_id)
        return JSONResponse({"ok": True, "duplicate": not new})

    return app


def _reject(app: FastAPI, status: int, reason: str) -> Response:
    app.state.rejected += 1
    log.warning("webhook rejected (%s): %s", status, reason)
    return JSONResponse({"ok": False, "error": reason}, status_code=status)
