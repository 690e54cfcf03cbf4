"""Webhook registration and delivery (signed POSTs with retries, and webhook faults).

``g1``: one URL per account; registering again replaces it and rotates the secret (64 hex
digits); deliveries carry ``X-Mori-Signature``. ``g3``: any number of webhooks per account, each
with an id, a name and a ``whsec_...`` secret; every event goes to each of them, signed with
``X-MoriBiz-Signature``. The signature is the lowercase hex HMAC-SHA256 of the exact body bytes,
keyed with the UTF-8 bytes of the whole secret string.

A delivery is one attempt plus one retry per ``webhook_retry_delays`` entry, on a timeout, a
connection error or a non-2xx answer. Each attempt is bounded as a whole by ``webhook_timeout``
(connecting, sending and reading the whole answer): a receiver that trickles its answer is cut
off at the deadline. Every delivery runs on its own daemon thread, so the API never waits for a
receiver; webhook faults are decided per delivery (event x webhook).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from mori.emulator.config import EmulatorConfig
from mori.emulator.events import Event
from mori.emulator.faults import WEBHOOK, FaultInjector
from mori.emulator.stats import Stats

G1_SIGNATURE_HEADER = "X-Mori-Signature"
G3_SIGNATURE_HEADER = "X-MoriBiz-Signature"
G3_SECRET_PREFIX = "whsec_"
_JOIN_SECONDS = 5.0


@dataclass(frozen=True)
class Registration:
    """A webhook endpoint of an account and its signing secret."""

    webhook_id: int
    url: str
    secret: str = field(repr=False)
    name: str = ""


@dataclass(frozen=True)
class Delivery:
    """One event, serialised, bound for one webhook."""

    event_id: str
    body: bytes
    registration: Registration


def sign(body: bytes, secret: str) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with the UTF-8 bytes of ``secret``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    """Keeps webhook registrations and delivers order events in background threads."""

    def __init__(
        self,
        config: EmulatorConfig,
        faults: FaultInjector,
        stats: Stats,
        stop: threading.Event,
    ) -> None:
        self._config = config
        self.faults = faults
        self._stats = stats
        self._stop = stop
        self._header = G3_SIGNATURE_HEADER if config.generation == "g3" else G1_SIGNATURE_HEADER
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._registrations: dict[str, list[Registration]] = {}
        self._held: dict[tuple[str, int], list[Delivery]] = {}
        self._threads: set[threading.Thread] = set()
        self._tls = httpx.create_ssl_context()

    # -- g1: one webhook per account ----------------------------------------------------------

    def register(self, account: str, url: str) -> str:
        """Set the account's only endpoint to ``url``; returns its new secret."""
        registration = Registration(next(self._ids), url, secrets.token_hex(32))
        with self._lock:
            self._registrations[account] = [registration]
        return registration.secret

    def url(self, account: str) -> str | None:
        """The account's endpoint, if one is registered."""
        with self._lock:
            registrations = self._registrations.get(account, [])
        return registrations[0].url if registrations else None

    def delete(self, account: str) -> None:
        """Forget the account's endpoints (no-op when there are none)."""
        with self._lock:
            self._registrations.pop(account, None)

    # -- g3: several webhooks per account -----------------------------------------------------

    def add(self, account: str, url: str, name: str | None) -> Registration:
        """Add a webhook (named after its URL unless ``name`` is given); returns it."""
        secret = G3_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        registration = Registration(next(self._ids), url, secret, url if name is None else name)
        with self._lock:
            self._registrations.setdefault(account, []).append(registration)
        return registration

    def listed(self, account: str) -> list[Registration]:
        """The account's webhooks, oldest first."""
        with self._lock:
            return list(self._registrations.get(account, []))

    def remove(self, account: str, webhook_id: int) -> bool:
        """Delete one of the account's webhooks; ``False`` if it has none with that id."""
        with self._lock:
            registrations = self._registrations.get(account, [])
            kept = [r for r in registrations if r.webhook_id != webhook_id]
            self._registrations[account] = kept
            return len(kept) != len(registrations)

    # -- delivery -----------------------------------------------------------------------------

    def emit(self, account: str, event: Event) -> None:
        """Send an order event to each of the account's webhooks, subject to webhook faults."""
        registrations = self.listed(account)
        if not registrations:
            self._stats.incr("webhooks_unregistered")
            return
        for registration in registrations:
            self._dispatch(account, Delivery(event.event_id, event.body, registration))

    def close(self) -> None:
        """Wait briefly for running deliveries (callers set the stop event first)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(_JOIN_SECONDS)

    def _dispatch(self, account: str, delivery: Delivery) -> None:
        """Deliver (or lose, or hold back) one event for one webhook, as the faults decide."""
        fault = self.faults.decide(WEBHOOK)
        if fault == "lose":
            return
        queue = (account, delivery.registration.webhook_id)
        if fault == "reorder":
            self._hold(queue, delivery)
            return
        self._spawn(lambda: self._send(queue, delivery, fault))

    def _send(self, queue: tuple[str, int], delivery: Delivery, fault: str | None) -> None:
        """Deliver one event as its fault says, then any events held back to follow it."""
        if fault == "delay" and self._stop.wait(self._config.webhook_delay_seconds):
            return
        self._deliver(delivery, bad_first_signature=fault == "badsig")
        if fault == "dup":
            self._deliver(delivery)
        for held in self._release(queue):
            self._deliver(held)

    def _hold(self, queue: tuple[str, int], delivery: Delivery) -> None:
        """Keep ``delivery`` back until the webhook's next event was sent (or the hold ends)."""
        with self._lock:
            self._held.setdefault(queue, []).append(delivery)
        self._spawn(lambda: self._send_if_still_held(queue, delivery))

    def _send_if_still_held(self, queue: tuple[str, int], delivery: Delivery) -> None:
        """After the hold time, send ``delivery`` unless a later event already released it."""
        if self._stop.wait(self._config.webhook_reorder_hold):
            return
        with self._lock:
            held = self._held.get(queue, [])
            if delivery not in held:
                return
            held.remove(delivery)
        self._deliver(delivery)

    def _release(self, queue: tuple[str, int]) -> list[Delivery]:
        """Take every event held back for one webhook."""
        with self._lock:
            return self._held.pop(queue, [])

    def _deliver(self, delivery: Delivery, bad_first_signature: bool = False) -> bool:
        """POST until a 2xx answer or the retries are used up."""
        delays = (0.0, *self._config.webhook_retry_delays)
        for attempt, delay in enumerate(delays):
            if delay > 0 and self._stop.wait(delay):
                return False
            secret = delivery.registration.secret
            if bad_first_signature and attempt == 0:
                secret = "not-" + secret
            if self._attempt(delivery, sign(delivery.body, secret)):
                self._stats.incr("webhooks_sent")
                return True
        self._stats.incr("webhooks_failed")
        return False

    def _attempt(self, delivery: Delivery, signature: str) -> bool:
        """One POST, bounded as a whole by ``webhook_timeout``; ``True`` on a 2xx answer."""
        self._stats.incr("webhook_attempts")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "mori-emulator",
            self._header: signature,
        }
        return asyncio.run(self._post(delivery.registration.url, delivery.body, headers))

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        """POST ``body``; cancelled (connection closed) when the whole attempt's time is up."""
        limit = self._config.webhook_timeout
        try:
            async with (
                asyncio.timeout(limit),
                httpx.AsyncClient(timeout=limit, verify=self._tls) as client,
            ):
                response = await client.post(url, content=body, headers=headers)
        except (TimeoutError, httpx.HTTPError):
            return False
        return response.is_success

    def _spawn(self, work: Callable[[], None]) -> None:
        """Run ``work`` on a tracked daemon thread."""

        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name="mori-emulator-webhook", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
